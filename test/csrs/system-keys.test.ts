/**
 * The KMS's own keys (root and issuing CAs, KMS message-signing, encryption
 * and TLS keys, before and after rotation) never appear in a participant's
 * certificate, in any encoding. The file key store keeps them in the data
 * directory, where the test reads them.
 */
import { createPrivateKey } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeCsr, makeTempDir } from "../pki/helpers.js";
import { ROTATE_KMS } from "../kms/helpers.js";
import { expectError } from "../certificates/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { reencodedCsr } from "./reencode.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");

const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`;

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`the KMS's own keys on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    const tmp = makeTempDir("kp-system-keys-");

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "BE" });
    });
    afterAll(async () => {
      await server?.close();
      tmp.cleanup();
    });

    const keyFiles = () => readdirSync(path.join(server.dataDir, "keys")).filter((f) => f.endsWith(".key")).sort();

    /** Submits a CSR for each key file, in its usual form and re-encoded, for every environment; all must be KEY_REUSE. */
    async function expectAllRefused(files: string[]) {
      for (const file of files) {
        const keyPath = path.join(server.dataDir, "keys", file);
        const ec = createPrivateKey(readFileSync(keyPath)).asymmetricKeyType === "ec";
        const subject = `/C=${org.country}/O=${org.name}/CN=Not The KMS`;
        const pems = [makeCsr(keyPath, subject), reencodedCsr(tmp.path, keyPath, subject, ec ? "ec-compressed" : "rsa-no-null")];
        if (ec) pems.push(reencodedCsr(tmp.path, keyPath, subject, "ec-hybrid"));
        for (const pem of pems) {
          for (const environment of ["MTF", "PRODUCTION"]) {
            const result = await server.gql(SUBMIT, { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment, pem } }, org.officers[0]!.token);
            expectError(result, "BAD_USER_INPUT", "KEY_REUSE");
            expect(result.errors![0]!.message, file).toMatch(/KMS's own/);
          }
        }
      }
    }

    it("should refuse every CA and KMS key of both environments, in its usual, compressed and hybrid form", async () => {
      const files = keyFiles();
      // A root and an issuing CA per environment, and three KMS keys per environment.
      expect(files.filter((f) => f.startsWith("ca-"))).toEqual(["ca-mtf-issuing.key", "ca-mtf-root.key", "ca-production-issuing.key", "ca-production-root.key"]);
      expect(files.filter((f) => f.startsWith("kms-"))).toHaveLength(6);
      await expectAllRefused(files);
    }, 120_000);

    it("should refuse the KMS's new keys after rotation, and keep refusing the replaced ones", async () => {
      const before = new Set(keyFiles());
      for (const purpose of ["MESSAGE_SIGNING", "MESSAGE_ENCRYPTION", "TLS_SERVER"]) {
        await server.ok(ROTATE_KMS, { environment: "MTF", purpose, validityDays: null });
      }
      const rotated = keyFiles().filter((f) => !before.has(f));
      expect(rotated).toHaveLength(3);
      await expectAllRefused([...rotated, ...[...before].filter((f) => f.startsWith("kms-mtf-"))]);
    }, 120_000);
  });
}
