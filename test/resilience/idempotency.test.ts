import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AuditLog } from "../../src/audit/audit.service.js";
import { generateKey, makeCsr, makeTempDir } from "../pki/helpers.js";
import { SUBMIT } from "../notifications/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { post, useFaultyCluster } from "./helpers.js";

const hasOpenssl = await available("openssl");
const hasCluster = hasOpenssl && (await available("postgres", "redis"));
const SIGN_WITH_ORG = `mutation($id: ID!) { signCsr(input: { csrId: $id }) { id serialNumber organization { name } } }`;
type Signed = { signCsr: { id: string; serialNumber: string; organization: { name: string } } };

async function pendingCsr(server: TestServer, org: TestOrganization, dir: string): Promise<string> {
  const pem = makeCsr(generateKey(dir, "p256"), `/C=${org.country}/O=${org.name}/CN=Idempotent ${randomUUID().slice(0, 8)}`);
  const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
    SUBMIT,
    { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } },
    org.officers[0]!.token,
  );
  return submitCsr.id;
}

async function auditCount(server: TestServer, action: string): Promise<number> {
  const rows = (await server.app.db.dataSource.query(`SELECT COUNT(*) AS n FROM audit_events WHERE action = '${action}'`)) as Array<{ n: string | number }>;
  return Number(rows[0]!.n);
}

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !(await available("postgres"))))(`Idempotency-Key on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    const tmp = makeTempDir("kp-idem-");
    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { officerCount: 2 });
    });
    afterAll(async () => {
      await server?.close();
      tmp.cleanup();
    });

    it("should answer a retried signCsr with the certificate the first attempt issued, for 24 hours, and run it only once", async () => {
      const csrId = await pendingCsr(server, org, tmp.path);
      const key = randomUUID();
      const first = await post<Signed>(server, SIGN_WITH_ORG, { id: csrId }, { headers: { "idempotency-key": key } });
      expect(first.status).toBe(200);
      server.clock.advanceMs(23 * 3_600_000);
      const retry = await post<Signed>(server, SIGN_WITH_ORG, { id: csrId }, { headers: { "idempotency-key": key } });
      expect(retry.body).toEqual(first.body);
      expect(await auditCount(server, "csr.sign")).toBe(1);
      // Without the key, the same request is what it always was: the CSR is already decided.
      const plain = await post<Signed>(server, SIGN_WITH_ORG, { id: csrId });
      expect(plain.body.errors?.[0]?.extensions).toEqual({ code: "CONFLICT", reason: "ALREADY_DECIDED" });
      // Past the key's time to live it is forgotten.
      server.clock.advanceMs(2 * 3_600_000);
      const late = await post<Signed>(server, SIGN_WITH_ORG, { id: csrId }, { headers: { "idempotency-key": key } });
      expect(late.body.errors?.[0]?.extensions).toEqual({ code: "CONFLICT", reason: "ALREADY_DECIDED" });
    });

    it("should refuse a key reused for a different request, and a malformed key, with their own reasons", async () => {
      const key = randomUUID();
      const one = await pendingCsr(server, org, tmp.path);
      const two = await pendingCsr(server, org, tmp.path);
      expect((await post<Signed>(server, SIGN_WITH_ORG, { id: one }, { headers: { "idempotency-key": key } })).status).toBe(200);
      const reused = await post<Signed>(server, SIGN_WITH_ORG, { id: two }, { headers: { "idempotency-key": key } });
      expect(reused.body.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "IDEMPOTENCY_KEY_REUSED" });
      const malformed = await post<Signed>(server, SIGN_WITH_ORG, { id: two }, { headers: { "idempotency-key": "x".repeat(201) } });
      expect(malformed.status).toBe(400);
      expect(malformed.body.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_IDEMPOTENCY_KEY" });
    });

    it("should take the same key from graphql-ws extensions", async () => {
      const csrId = await pendingCsr(server, org, tmp.path);
      const key = randomUUID();
      const client = server.wsClient(server.operatorToken);
      const run = () =>
        new Promise<unknown>((resolve, reject) => {
          let result: unknown;
          client.subscribe(
            { query: SIGN_WITH_ORG, variables: { id: csrId }, extensions: { idempotencyKey: key } },
            { next: (r) => (result = r), error: reject, complete: () => resolve(result) },
          );
        });
      const first = (await run()) as Signed & { data: Signed };
      const again = (await run()) as Signed & { data: Signed };
      expect(first).toMatchObject({ data: { signCsr: { id: expect.any(String) } } });
      expect(again).toEqual(first);
      // And over HTTP, the same key of the same officer finds the same outcome.
      const overHttp = await post<Signed>(server, SIGN_WITH_ORG, { id: csrId }, { headers: { "idempotency-key": key } });
      expect(overHttp.body.data).toEqual(first.data);
      await client.dispose();
    });
  });
}

describe.skipIf(!hasCluster)("Idempotency-Key across instances after an ambiguous failure", () => {
  const setup = useFaultyCluster("kp-idem-cluster-");

  it("should answer a signCsr retried on another instance, after its commit on the first was followed by an outage, with the issued certificate", async () => {
    const { a, b } = setup.cluster();
    const csrId = await pendingCsr(a.server, setup.org(), setup.tmp);
    const key = randomUUID();
    // The database goes away right after the commit (as the mutation waits for its sequencer round), before the answer is complete.
    const settle = AuditLog.prototype.settle;
    vi.spyOn(AuditLog.prototype, "settle").mockImplementationOnce(function (this: AuditLog) {
      a.pg.refuse();
      return settle.call(this);
    });
    const first = await post<Signed>(a.server, SIGN_WITH_ORG, { id: csrId }, { headers: { "idempotency-key": key } });
    expect(first.status).toBe(503);
    expect(first.body.errors?.[0]?.extensions).toEqual({ code: "INTERNAL_SERVER_ERROR", reason: "UNAVAILABLE" });
    const issued = (await b.server.app.db.dataSource.query(`SELECT id FROM certificates WHERE "csrId" = $1`, [csrId])) as Array<{ id: string }>;
    expect(issued).toHaveLength(1); // it did commit
    const retry = await post<Signed>(b.server, SIGN_WITH_ORG, { id: csrId }, { headers: { "idempotency-key": key } });
    expect(retry.status).toBe(200);
    expect(retry.body.data?.signCsr.id).toBe(issued[0]!.id);
    expect(await auditCount(b.server, "csr.sign")).toBe(1);
  }, 30_000);
});
