import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";

const crypto = webcrypto as unknown as Crypto;
const postgres = await available("postgres");

async function csr(org: TestOrganization, cn: string): Promise<string> {
  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"])) as CryptoKeyPair;
  const request = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ C: [org.country] }, { O: [org.name] }, { CN: [cn] }], keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } },
    crypto,
  );
  return request.toString("pem");
}

describe.each<DbKind>(["sqlite", "postgres"])("GET /metrics on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;
    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { name: "Metrics Bank Secret Name", country: "GB" });
      for (const cn of ["One", "Two"]) {
        await server.ok(
          `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
          { input: { organizationId: org.id, kind: "SIGNING", environment: "MTF", pem: await csr(org, cn) } },
          org.officers[0]!.token,
        );
      }
      const { certificateSigningRequests } = await server.ok<{ certificateSigningRequests: { nodes: Array<{ id: string }> } }>(
        `{ certificateSigningRequests(filter: { status: PENDING }) { nodes { id } } }`,
      );
      await server.ok(`mutation($id: ID!) { signCsr(input: { csrId: $id, validityDays: 20 }) { id } }`, { id: certificateSigningRequests.nodes[0]!.id });
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should expose queue sizes, certificate counts and request durations as Prometheus text", async () => {
      const res = await fetch(`${server.url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain");
      const text = await res.text();
      expect(text).toContain('keyportal_csrs{status="PENDING"} 1');
      expect(text).toContain('keyportal_csrs{status="SIGNED"} 1');
      expect(text).toContain('keyportal_certificates{environment="MTF",status="ACTIVE"} 1');
      expect(text).toContain("keyportal_certificates_expiring_30d 1");
      expect(text).toMatch(/keyportal_http_request_duration_seconds_count\{method="POST",route="\/graphql",status="200"\} \d+/);
      expect(text).toMatch(/keyportal_audit_events \d+/);
      expect(text).toMatch(/# TYPE keyportal_http_request_duration_seconds histogram/);
    });

    it("should carry prom-client's process, event loop and GC metrics beside the old names", async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
      expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
      expect(text).toContain("# TYPE nodejs_gc_duration_seconds histogram");
      expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
      expect(text).toMatch(/^nodejs_heap_used_bytes \d+/m);
      expect(text).toMatch(/^process_uptime_seconds \d+/m);
      expect(text).toMatch(/^keyportal_notification_subscriptions 0/m);
    });

    it("should never show an organization, a subject or a token", async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      expect(text).not.toContain("Metrics Bank");
      expect(text).not.toContain("CN=");
      expect(text).not.toContain(org.officers[0]!.token);
      expect(text).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/);
    });
  });
});
