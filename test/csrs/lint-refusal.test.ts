/**
 * Lint before signing, end to end: a profile that would produce a
 * non-conforming certificate (injected here: keyEncipherment for a TLS
 * client, the old finding 4) is refused before the signature, as an
 * internal error to the client, with the failed rule in the log and the audit.
 */
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertificateKind } from "../../src/kernel/domain.js";
import { DEFAULT_PROFILES } from "../../src/pki/profiles.js";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { csrFor, expectError, SUBMIT } from "../certificates/helpers.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");

const BROKEN = {
  ...DEFAULT_PROFILES,
  [CertificateKind.MTLS_CLIENT]: { ...DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT], keyUsage: ["digitalSignature", "keyEncipherment"] },
};

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`lint before signing over the API on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    let tmp: ReturnType<typeof makeTempDir>;
    const logLines: string[] = [];

    beforeAll(async () => {
      tmp = makeTempDir("kp-lint-");
      const sink = new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) });
      server = await startTestServer({ db, overrides: { profiles: BROKEN, logger: pino({ level: "info" }, sink) } });
      org = await createOrganization(server, { country: "GB" });
    });
    afterAll(async () => {
      await server?.close();
      tmp?.cleanup();
    });

    it("should refuse to sign, keep the request pending, log and audit the failed rule, and tell the client nothing more", async () => {
      const { pem } = csrFor(tmp.path, org, "Lint Client", "rsa2048");
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        SUBMIT,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } },
        org.officers[0]!.token,
      );
      const result = await server.gql(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { id } }`, { id: submitCsr.id }, server.operatorToken);
      expectError(result, "INTERNAL_SERVER_ERROR", "LINT_FAILED");
      expect(result.errors![0]!.message).not.toContain("CLIENT_AUTH_KEY_USAGE");

      const { certificateSigningRequest } = await server.ok<{ certificateSigningRequest: { status: string; certificate: null } }>(
        `query($id: ID!) { certificateSigningRequest(id: $id) { status certificate { id } } }`,
        { id: submitCsr.id },
      );
      expect(certificateSigningRequest).toEqual({ status: "PENDING", certificate: null });

      const { auditLog } = await server.ok<{ auditLog: { nodes: Array<{ action: string; outcome: string; details: string }> } }>(
        `{ auditLog(first: 500) { nodes { action outcome details } } }`,
      );
      const refused = auditLog.nodes.find((e) => e.action === "csr.sign");
      expect(refused?.outcome).toBe("INTERNAL_SERVER_ERROR");
      expect(JSON.parse(refused!.details)).toMatchObject({ reason: "LINT_FAILED", lintRule: "CLIENT_AUTH_KEY_USAGE" });
      const logged = logLines.map((l) => JSON.parse(l) as { level: number; msg: string; rule?: string }).find((l) => l.rule);
      expect(logged).toMatchObject({ level: 50, rule: "CLIENT_AUTH_KEY_USAGE", msg: "certificate lint failed; nothing was signed" });
    });
  });
}
