import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { available } from "../support/deps.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import {
  type AuditRow,
  auditRows,
  CREATE_API_TOKEN,
  CREATE_ORGANIZATION,
  DEACTIVATE_OFFICER,
  expectError,
  freshEmail,
  REGISTER_OFFICER,
  REVOKE_API_TOKEN,
} from "../officers/helpers.js";

const postgres = await available("postgres");
const GENESIS = "0".repeat(64);
const VERIFY = `{ verifyAuditLog { valid checkedEvents firstInvalidSeq } }`;

/** Written from the contract, not from the service: sorted keys at every level, no whitespace. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function expectedHash(row: AuditRow): string {
  const content = canonical({
    seq: row.seq,
    at: row.at,
    actorId: row.actorId,
    organizationId: row.organizationId,
    action: row.action,
    outcome: row.outcome,
    targetType: row.targetType,
    targetId: row.targetId,
    details: row.details,
  });
  return createHash("sha256").update(row.prevHash + content).digest("hex");
}

async function verify(server: TestServer) {
  return (await server.ok<{ verifyAuditLog: { valid: boolean; checkedEvents: number; firstInvalidSeq: number | null } }>(VERIFY)).verifyAuditLog;
}

describe.each<DbKind>(["sqlite", "postgres"])("the audit log on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;
    const issuedTokens: string[] = [];

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { officerCount: 2 });
      issuedTokens.push(server.operatorToken, ...org.officers.map((o) => o.token));
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should append exactly one event per mutation, with its actor, target and organization", async () => {
      const officer = org.officers[0]!;
      const step = async (query: string, variables: Record<string, unknown>, token: string) => {
        const before = (await auditRows(server)).length;
        const result = await server.ok<Record<string, { id?: string; token?: string }>>(query, variables, token);
        const after = await auditRows(server);
        expect(after).toHaveLength(before + 1);
        return { result, event: after.at(-1)! };
      };
      const operatorId = (await server.ok<{ me: { officer: { id: string } } }>(`{ me { officer { id } } }`)).me.officer.id;

      const created = await step(CREATE_ORGANIZATION, { input: { name: "Audit Trail Bank", kind: "MSP", contactEmail: "pki@audit.example", country: "de" } }, server.operatorToken);
      const newOrgId = created.result.createOrganization!.id!;
      expect(created.event).toMatchObject({ action: "organization.create", outcome: "SUCCESS", actorId: operatorId, organizationId: newOrgId, targetType: "Organization", targetId: newOrgId });
      expect(JSON.parse(created.event.details)).toEqual({ name: "Audit Trail Bank", kind: "MSP", country: "DE", contactEmail: "pki@audit.example" });

      const email = freshEmail("audited");
      const registered = await step(REGISTER_OFFICER, { input: { organizationId: org.id, name: "Audited Officer", email } }, officer.token);
      const newOfficerId = registered.result.registerOfficer!.id!;
      expect(registered.event).toMatchObject({ action: "officer.register", outcome: "SUCCESS", actorId: officer.id, organizationId: org.id, targetType: "Officer", targetId: newOfficerId });
      expect(JSON.parse(registered.event.details)).toEqual({ organizationId: org.id, email });

      const code = await server.enrollmentCode(email);
      const enrolled = await step(
        `mutation($code: String!) { enrollOfficer(code: $code, label: "first") { id token } }`,
        { code },
        null as unknown as string,
      );
      const firstToken = (enrolled.result as { enrollOfficer: { id: string; token: string } }).enrollOfficer;
      issuedTokens.push(firstToken.token);
      expect(enrolled.event).toMatchObject({ action: "officer.enroll", outcome: "SUCCESS", actorId: null, organizationId: org.id, targetType: "Officer", targetId: newOfficerId });
      expect(JSON.parse(enrolled.event.details)).toEqual({ tokenId: firstToken.id, label: "first" });

      const granted = await step(CREATE_API_TOKEN, { id: newOfficerId, label: "audited" }, firstToken.token);
      issuedTokens.push(granted.result.createApiToken!.token!);
      expect(granted.event).toMatchObject({ action: "token.create", outcome: "SUCCESS", actorId: newOfficerId, organizationId: org.id, targetType: "ApiToken", targetId: granted.result.createApiToken!.id });

      const revoked = await step(REVOKE_API_TOKEN, { id: granted.result.createApiToken!.id }, server.operatorToken);
      expect(revoked.event).toMatchObject({ action: "token.revoke", outcome: "SUCCESS", organizationId: org.id, targetId: granted.result.createApiToken!.id });

      const deactivated = await step(DEACTIVATE_OFFICER, { id: newOfficerId }, officer.token);
      expect(deactivated.event).toMatchObject({ action: "officer.deactivate", outcome: "SUCCESS", actorId: officer.id, organizationId: org.id, targetId: newOfficerId });
    });

    it("should record refused attempts with their outcome code and reason", async () => {
      const officer = org.officers[0]!;
      expectError(await server.gql(CREATE_ORGANIZATION, { input: { name: "Nope Bank", kind: "PARTICIPANT", contactEmail: "a@b.example", country: "GB" } }, officer.token), "FORBIDDEN");
      let event = (await auditRows(server)).at(-1)!;
      expect(event).toMatchObject({ action: "organization.create", outcome: "FORBIDDEN", actorId: officer.id });
      expect(JSON.parse(event.details)).toMatchObject({ reason: "FORBIDDEN" });

      expectError(await server.gql(REGISTER_OFFICER, { input: { organizationId: org.id, name: "Bad Email", email: "nope" } }, officer.token), "BAD_USER_INPUT", "INVALID_EMAIL");
      event = (await auditRows(server)).at(-1)!;
      expect(event).toMatchObject({ action: "officer.register", outcome: "BAD_USER_INPUT", actorId: officer.id, organizationId: org.id, targetId: null });
      expect(JSON.parse(event.details)).toMatchObject({ reason: "INVALID_EMAIL" });

      expectError(await server.gql(DEACTIVATE_OFFICER, { id: officer.id }, officer.token), "FORBIDDEN");
      event = (await auditRows(server)).at(-1)!;
      expect(event).toMatchObject({ action: "officer.deactivate", outcome: "FORBIDDEN", targetId: officer.id, organizationId: org.id });

      expectError(await server.gql(DEACTIVATE_OFFICER, { id: officer.id }, null), "UNAUTHENTICATED");
      event = (await auditRows(server)).at(-1)!;
      expect(event).toMatchObject({ action: "officer.deactivate", outcome: "UNAUTHENTICATED", actorId: null });
    });

    it("should write the change and its event in one transaction: a failing append leaves no change", async () => {
      const audit = server.app.services.audit;
      const original = audit.append;
      const name = `Never Bank ${Math.random().toString(36).slice(2, 8)}`;
      const before = await auditRows(server);
      audit.append = async () => {
        throw new Error("injected: the disk is full");
      };
      try {
        const result = await server.gql(CREATE_ORGANIZATION, { input: { name, kind: "PARTICIPANT", contactEmail: "a@never.example", country: "GB" } }, server.operatorToken);
        expectError(result, "INTERNAL_SERVER_ERROR");
      } finally {
        audit.append = original;
      }
      expect(await server.app.db.dataSource.query(`SELECT id FROM organizations WHERE name = '${name}'`)).toEqual([]);
      expect(await auditRows(server)).toEqual(before);
    });

    it("should write neither the change nor an event when the work fails after its first write", async () => {
      const outbox = server.app.services.outbox;
      const original = outbox.insert;
      const email = freshEmail("half");
      const before = await auditRows(server);
      outbox.insert = async () => {
        throw new Error("injected: outbox unavailable");
      };
      try {
        expectError(await server.gql(REGISTER_OFFICER, { input: { organizationId: org.id, name: "Half Done", email } }, server.operatorToken), "INTERNAL_SERVER_ERROR");
      } finally {
        outbox.insert = original;
      }
      expect(await server.app.db.dataSource.query(`SELECT id FROM officers WHERE email = '${email}'`)).toEqual([]);
      expect(await auditRows(server)).toEqual(before);
    });

    it("should number events gaplessly from 1 and chain each to the previous hash", async () => {
      const rows = await auditRows(server);
      expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
      expect(rows[0]!.prevHash).toBe(GENESIS);
      for (let i = 1; i < rows.length; i++) expect(rows[i]!.prevHash).toBe(rows[i - 1]!.hash);
    });

    it("should hash every event as SHA-256(prevHash || canonical JSON), recomputed here independently", async () => {
      const rows = await auditRows(server);
      const registered = rows.find((r) => r.action === "officer.register" && r.outcome === "SUCCESS")!;
      expect(registered.hash).toBe(expectedHash(registered));
      for (const row of rows) expect(row.hash, `seq ${row.seq}`).toBe(expectedHash(row));
      // The API serves the same values.
      const { auditLog } = await server.ok<{ auditLog: { nodes: Array<{ seq: number; hash: string; prevHash: string; details: string; at: string }> } }>(
        `{ auditLog(first: 500) { nodes { seq hash prevHash details at } } }`,
      );
      expect(auditLog.nodes).toEqual(rows.map((r) => ({ seq: r.seq, hash: r.hash, prevHash: r.prevHash, details: r.details, at: r.at })));
    });

    it("should never hold a token in an event's details", async () => {
      const rows = await auditRows(server);
      expect(issuedTokens.length).toBeGreaterThan(3);
      for (const token of issuedTokens) expect(JSON.stringify(rows)).not.toContain(token);
      for (const row of rows) expect(Object.keys(JSON.parse(row.details) as object)).not.toContain("token");
    });

    it("should page through the log with the seq cursor", async () => {
      const all = (await auditRows(server)).map((r) => r.seq);
      const seen: number[] = [];
      let after: string | null = null;
      for (;;) {
        const { auditLog } = await server.ok<{ auditLog: { nodes: Array<{ seq: number }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
          `query($after: String) { auditLog(first: 3, after: $after) { nodes { seq } pageInfo { hasNextPage endCursor } } }`,
          { after },
        );
        seen.push(...auditLog.nodes.map((n) => n.seq));
        if (!auditLog.pageInfo.hasNextPage) break;
        after = auditLog.pageInfo.endCursor;
      }
      expect(seen).toEqual(all);
    });

    it("should show officers only their own organization's events and operators all of them", async () => {
      const other = await createOrganization(server, { officerCount: 1 });
      const rows = await auditRows(server);
      const seqsOf = async (token: string) =>
        (await server.ok<{ auditLog: { nodes: Array<{ seq: number }> } }>(`{ auditLog(first: 500) { nodes { seq } } }`, {}, token)).auditLog.nodes.map((n) => n.seq);
      expect(await seqsOf(org.officers[0]!.token)).toEqual(rows.filter((r) => r.organizationId === org.id).map((r) => r.seq));
      expect(await seqsOf(other.officers[0]!.token)).toEqual(rows.filter((r) => r.organizationId === other.id).map((r) => r.seq));
      expect(await seqsOf(server.operatorToken)).toEqual(rows.map((r) => r.seq));
    });

    it("should have the database refuse UPDATE and DELETE of events", async () => {
      await expect(server.app.db.dataSource.query(`UPDATE audit_events SET outcome = 'SUCCESS' WHERE seq = 2`)).rejects.toThrow(/append-only/);
      await expect(server.app.db.dataSource.query(`DELETE FROM audit_events WHERE seq = 2`)).rejects.toThrow(/append-only/);
      expect(await verify(server)).toEqual({ valid: true, checkedEvents: (await auditRows(server)).length, firstInvalidSeq: null });
    });
  });
});

describe.each<DbKind>(["sqlite", "postgres"])("tampering with the audit log on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;

    /** Runs raw SQL with the append-only triggers out of the way, as an attacker with database access could. */
    async function bypassingTriggers(sql: string): Promise<void> {
      const { dataSource } = server.app.db;
      if (db === "postgres") {
        await dataSource.transaction(async (em) => {
          await em.query(`ALTER TABLE audit_events DISABLE TRIGGER USER`);
          await em.query(sql);
          await em.query(`ALTER TABLE audit_events ENABLE TRIGGER USER`);
        });
        return;
      }
      // SQLite has one writing connection: take a turn in its transaction queue, so that these statements never
      // land inside a background transaction (a lease renewal, a delivery claim) and share its fate.
      await server.app.db.transaction(async ({ em }) => {
        const triggers = (await em.query(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_events'`)) as Array<{ name: string; sql: string }>;
        expect(triggers.length).toBe(3); // the two append-only triggers and the one that moves the chain head
        for (const t of triggers) await em.query(`DROP TRIGGER ${t.name}`);
        await em.query(sql);
        for (const t of triggers) await em.query(t.sql);
      });
    }

    beforeAll(async () => {
      server = await startTestServer({ db });
      const org = await createOrganization(server, { officerCount: 3 });
      await addOfficer(server, org.id, freshEmail());
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should find a changed detail at its seq", async () => {
      const rows = await auditRows(server);
      expect(await verify(server)).toEqual({ valid: true, checkedEvents: rows.length, firstInvalidSeq: null });
      const victim = rows.find((r) => r.action === "officer.register")!;
      await bypassingTriggers(`UPDATE audit_events SET details = '{"email":"someone.else@bank.example"}' WHERE seq = ${victim.seq}`);
      // The triggers are back.
      await expect(server.app.db.dataSource.query(`DELETE FROM audit_events WHERE seq = 1`)).rejects.toThrow(/append-only/);
      expect(await verify(server)).toEqual({ valid: false, checkedEvents: victim.seq - 1, firstInvalidSeq: victim.seq });
      await bypassingTriggers(`UPDATE audit_events SET details = '${victim.details}' WHERE seq = ${victim.seq}`);
      expect((await verify(server)).valid).toBe(true);
    });

    it("should find a changed outcome whose hash was recomputed at the next seq", async () => {
      const rows = await auditRows(server);
      const victim = rows[2]!;
      const forged = { ...victim, outcome: "FORBIDDEN" };
      const forgedHash = expectedHash(forged);
      await bypassingTriggers(`UPDATE audit_events SET outcome = 'FORBIDDEN', hash = '${forgedHash}' WHERE seq = ${victim.seq}`);
      expect(await verify(server)).toMatchObject({ valid: false, firstInvalidSeq: victim.seq + 1 });
      await bypassingTriggers(`UPDATE audit_events SET outcome = '${victim.outcome}', hash = '${victim.hash}' WHERE seq = ${victim.seq}`);
      expect((await verify(server)).valid).toBe(true);
    });

    it("should find a deleted event in the middle and a deleted last event", async () => {
      const rows = await auditRows(server);
      const middle = rows[3]!;
      await bypassingTriggers(`DELETE FROM audit_events WHERE seq = ${middle.seq}`);
      expect(await verify(server)).toMatchObject({ valid: false, firstInvalidSeq: middle.seq });
      const last = rows.at(-1)!;
      await bypassingTriggers(`DELETE FROM audit_events WHERE seq = ${last.seq}`);
      await bypassingTriggers(
        `INSERT INTO audit_events (seq, at, "actorId", "organizationId", action, outcome, "targetType", "targetId", details, hash, "prevHash")
         VALUES (${middle.seq}, '${middle.at}', ${middle.actorId ? `'${middle.actorId}'` : "NULL"}, ${middle.organizationId ? `'${middle.organizationId}'` : "NULL"},
                 '${middle.action}', '${middle.outcome}', '${middle.targetType}', ${middle.targetId ? `'${middle.targetId}'` : "NULL"}, '${middle.details}', '${middle.hash}', '${middle.prevHash}')`,
      );
      expect(await verify(server)).toEqual({ valid: false, checkedEvents: last.seq - 1, firstInvalidSeq: last.seq });
    });
  });
});

describe("the audit chain head on sqlite", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ db: "sqlite" });
    await createOrganization(server, { officerCount: 2 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should move the chain head with each inserted event and refuse one that does not extend it", async () => {
    const rows = await auditRows(server);
    const last = rows.at(-1)!;
    const head = async () => (await server.app.db.dataSource.query(`SELECT seq, hash FROM audit_head WHERE id = 1`)) as Array<{ seq: number; hash: string }>;
    expect(await head()).toEqual([{ seq: last.seq, hash: last.hash }]);
    const insert = (seq: number, prevHash: string) =>
      server.app.db.transaction(({ em }) =>
        em.query(
          `INSERT INTO audit_events (seq, at, "actorId", "organizationId", action, outcome, "targetType", "targetId", details, hash, "prevHash")
           VALUES (?, ?, NULL, NULL, 'forged', 'SUCCESS', 'Nothing', NULL, '{}', ?, ?)`,
          [seq, new Date().toISOString(), "f".repeat(64), prevHash],
        ),
      );
    // A fork (an old seq with its predecessor's hash: the seq is taken, too), a gap and a wrong prevHash are refused; the head stays.
    await expect(insert(last.seq, last.prevHash)).rejects.toThrow(/UNIQUE|does not extend the chain head/);
    await expect(insert(last.seq + 2, last.hash)).rejects.toThrow(/does not extend the chain head/);
    await expect(insert(last.seq + 1, "0".repeat(64))).rejects.toThrow(/does not extend the chain head/);
    expect(await head()).toEqual([{ seq: last.seq, hash: last.hash }]);
    expect((await verify(server)).valid).toBe(true);
  });
});
