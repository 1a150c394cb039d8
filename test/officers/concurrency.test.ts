import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { available } from "../support/deps.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { auditRows, freshEmail, REGISTER_OFFICER } from "./helpers.js";

const postgres = await available("postgres");
const VERIFY = `{ verifyAuditLog { valid checkedEvents firstInvalidSeq } }`;

type Verification = { valid: boolean; checkedEvents: number; firstInvalidSeq: number | null };

describe.skipIf(!postgres)("20 concurrent registrations on PostgreSQL", () => {
  let server: TestServer;
  let org: TestOrganization;

  beforeAll(async () => {
    server = await startTestServer({ db: "postgres" });
    org = await createOrganization(server, { officerCount: 2 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should all succeed, each with one audit event, gapless seq and a valid chain", async () => {
    const before = (await auditRows(server)).length;
    const emails = Array.from({ length: 20 }, () => freshEmail("rush"));
    const results = await Promise.all(
      emails.map((email, i) =>
        server.gql<{ registerOfficer: { id: string; email: string } }>(
          REGISTER_OFFICER,
          { input: { organizationId: org.id, name: `Rush Officer ${i}`, email } },
          // Half by the organization's own officers, half by the operator.
          i % 2 === 0 ? org.officers[i % 4 === 0 ? 0 : 1]!.token : server.operatorToken,
        ),
      ),
    );
    for (const r of results) expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    expect(results.map((r) => r.data!.registerOfficer.email).sort()).toEqual([...emails].sort());

    const rows = await auditRows(server);
    expect(rows).toHaveLength(before + 20);
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
    const registered = rows.slice(before);
    expect(registered.every((r) => r.action === "officer.register" && r.outcome === "SUCCESS")).toBe(true);
    expect(new Set(registered.map((r) => r.targetId))).toEqual(new Set(results.map((r) => r.data!.registerOfficer.id)));

    expect((await server.ok<{ verifyAuditLog: Verification }>(VERIFY)).verifyAuditLog).toEqual({
      valid: true,
      checkedEvents: rows.length,
      firstInvalidSeq: null,
    });
    const count = await server.ok<{ organization: { activeOfficerCount: number } }>(`query($id: ID!) { organization(id: $id) { activeOfficerCount } }`, {
      id: org.id,
    });
    expect(count.organization.activeOfficerCount).toBe(22);
  });

  it("should not starve the connection pool when a mutation's policy check reads the database outside its transaction", async () => {
    // Delegation grants live in the database: the policy reads them through the pool while the mutation's
    // transaction holds a connection of its own. 30 at once, with a pool of 10, must still all finish.
    const { policy } = server.app.services;
    const original = policy.canReadOrganization;
    policy.canReadOrganization = async function (this: typeof policy, viewer, organizationId) {
      await server.app.db.manager.query("SELECT 1");
      return original.call(this, viewer, organizationId);
    };
    try {
      const results = await Promise.race([
        Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            server.gql(REGISTER_OFFICER, { input: { organizationId: org.id, name: `Pool Officer ${i}`, email: freshEmail("pool") } }, server.operatorToken),
          ),
        ),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 20_000)),
      ]);
      expect(results, "the mutations did not finish within 20 s").not.toBeNull();
      for (const r of results!) expect(r.errors).toBeUndefined();
    } finally {
      policy.canReadOrganization = original;
    }
    expect((await server.ok<{ verifyAuditLog: Verification }>(VERIFY)).verifyAuditLog.valid).toBe(true);
  });

  it("should refuse all but one of 10 concurrent registrations of the same email with CONFLICT / EMAIL_TAKEN", async () => {
    const email = freshEmail("same");
    const results = await Promise.all(
      Array.from({ length: 10 }, () => server.gql(REGISTER_OFFICER, { input: { organizationId: org.id, name: "Same Person", email } }, server.operatorToken)),
    );
    expect(results.filter((r) => !r.errors)).toHaveLength(1);
    const refused = results.filter((r) => r.errors);
    expect(refused.map((r) => r.errors![0]!.extensions)).toEqual(Array(9).fill({ code: "CONFLICT", reason: "EMAIL_TAKEN" }));
    expect((await server.ok<{ verifyAuditLog: Verification }>(VERIFY)).verifyAuditLog.valid).toBe(true);
  });
});

describe.each<DbKind>(["sqlite", "postgres"])("verifying the audit log while it grows on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { officerCount: 1 });
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should never report an untouched log as tampered", async () => {
      let writing = true;
      const verifications: Verification[] = [];
      const verifier = (async () => {
        while (writing) verifications.push((await server.ok<{ verifyAuditLog: Verification }>(VERIFY)).verifyAuditLog);
      })();
      const writes: Array<Promise<unknown>> = [];
      for (let i = 0; i < 40; i++) {
        writes.push(server.ok(REGISTER_OFFICER, { input: { organizationId: org.id, name: `Busy Officer ${i}`, email: freshEmail("busy") } }));
      }
      await Promise.all(writes);
      writing = false;
      await verifier;
      expect(verifications.length).toBeGreaterThan(1);
      expect(verifications.filter((v) => !v.valid)).toEqual([]);
      const final = (await server.ok<{ verifyAuditLog: Verification }>(VERIFY)).verifyAuditLog;
      expect(final).toEqual({ valid: true, checkedEvents: (await auditRows(server)).length, firstInvalidSeq: null });
    });
  });
});
