/**
 * Officer enrollment: a registered officer is mailed a one-time code and
 * exchanges it, without a token, for their first token. On SQLite and PostgreSQL.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { addOfficer, enroll } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { auditRows, capturedLogger, eventually, expectError, freshEmail, REGISTER_OFFICER } from "./helpers.js";

const ENROLL = `mutation($code: String!, $label: String!) { enrollOfficer(code: $code, label: $label) { id token label expiresAt officer { id enrolled status } } }`;
const RESEND = `mutation($id: ID!) { resendEnrollment(officerId: $id) { id enrolled } }`;
const ME = `{ me { officer { id enrolled } } }`;

const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("officer enrollment on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;
    const log = capturedLogger("trace");

    beforeAll(async () => {
      server = await startTestServer({ db, overrides: { logger: log.logger } });
      org = await createOrganization(server, { officerCount: 2 });
    });
    afterAll(async () => {
      await server?.close();
    });

    async function register(email = freshEmail("enrollee"), token = server.operatorToken): Promise<{ id: string; email: string }> {
      const { registerOfficer } = await server.ok<{ registerOfficer: { id: string } }>(
        REGISTER_OFFICER,
        { input: { organizationId: org.id, name: "New Officer", email } },
        token,
      );
      return { id: registerOfficer.id, email };
    }

    it("should mail the new officer a code of at least 128 bits on a line of its own, and keep only its SHA-256", async () => {
      const officer = await register();
      const code = await server.enrollmentCode(officer.email);
      const mail = server.sentMail.filter((m) => m.to === officer.email && m.text.includes("Enrollment code:"));
      expect(mail).toHaveLength(1);
      expect(mail[0]!.text.split("\n")).toContain(`Enrollment code: ${code}`);
      // kpe_ + base64url of 20 random bytes: 160 bits.
      expect(code).toMatch(/^kpe_[A-Za-z0-9_-]{27}$/);
      const rows = (await server.app.db.dataSource.query(`SELECT "codeHash", "expiresAt" FROM enrollment_codes WHERE "officerId" = '${officer.id}'`)) as Array<{
        codeHash: string;
        expiresAt: string;
      }>;
      expect(rows).toHaveLength(1);
      expect(rows[0]!.codeHash).toMatch(/^[0-9a-f]{64}$/);
      // 72 hours by default.
      expect(rows[0]!.expiresAt).toBe(new Date(server.clock.now().getTime() + 72 * 3_600_000).toISOString());
    });

    it("should keep the code out of the database, the audit log, notifications, email rows and the logs", async () => {
      const officer = await register();
      const code = await server.enrollmentCode(officer.email);
      await enroll(server, code);
      const tables = (await server.app.db.dataSource.query(
        db === "postgres"
          ? `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()`
          : `SELECT name FROM sqlite_master WHERE type = 'table'`,
      )) as Array<{ name: string }>;
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(["enrollment_codes", "audit_events", "notifications", "email_deliveries"]));
      for (const { name } of tables) {
        const rows = (await server.app.db.dataSource.query(`SELECT * FROM "${name}"`)) as unknown[];
        expect(JSON.stringify(rows), `table ${name}`).not.toContain(code);
        expect(JSON.stringify(rows), `table ${name}`).not.toContain(code.slice(4));
      }
      expect(log.lines().join("\n")).not.toContain(code.slice(4));
      // The only email that holds it is the enrollment email itself.
      expect(server.sentMail.filter((m) => m.text.includes(code)).map((m) => m.to)).toEqual([officer.email]);
    });

    it("should exchange the code once for the officer's first token, and then know the officer as enrolled", async () => {
      const officer = await register();
      const before = await server.ok<{ registerOfficer: unknown }>(`query($id: ID!) { organization(id: $id) { officers { id enrolled } } }`, { id: org.id });
      expect(JSON.stringify(before)).toContain(`{"id":"${officer.id}","enrolled":false}`);
      const code = await server.enrollmentCode(officer.email);
      const first = await server.gql<{ enrollOfficer: { token: string; label: string; expiresAt: null; officer: { id: string; enrolled: boolean; status: string } } }>(
        ENROLL,
        { code, label: "laptop" },
        null,
      );
      expect(first.errors).toBeUndefined();
      expect(first.data!.enrollOfficer).toMatchObject({ label: "laptop", expiresAt: null, officer: { id: officer.id, enrolled: true, status: "ACTIVE" } });
      const { me } = await server.ok<{ me: { officer: { id: string; enrolled: boolean } } }>(ME, {}, first.data!.enrollOfficer.token);
      expect(me.officer).toEqual({ id: officer.id, enrolled: true });
      expectError(await server.gql(ENROLL, { code, label: "again" }, null), "BAD_USER_INPUT", "ENROLLMENT_CODE_INVALID");
      const tokens = (await server.app.db.dataSource.query(`SELECT id FROM api_tokens WHERE "officerId" = '${officer.id}'`)) as unknown[];
      expect(tokens).toHaveLength(1);
    });

    it("should answer unknown, used, expired and superseded codes all alike", async () => {
      const answers: Array<{ code?: string; reason?: string; message: string }> = [];
      const record = async (code: string) => {
        const result = await server.gql(ENROLL, { code, label: "x" }, null);
        const error = expectError(result, "BAD_USER_INPUT", "ENROLLMENT_CODE_INVALID");
        answers.push({ ...error.extensions, message: error.message });
      };
      await record(`kpe_${"A".repeat(27)}`); // unknown
      const used = await register();
      const usedCode = await server.enrollmentCode(used.email);
      await enroll(server, usedCode);
      await record(usedCode); // used
      const superseded = await register();
      const oldCode = await server.enrollmentCode(superseded.email);
      await server.ok(RESEND, { id: superseded.id });
      const newCode = await server.enrollmentCode(superseded.email, { after: 1 });
      expect(newCode).not.toBe(oldCode);
      await record(oldCode); // superseded
      server.clock.advanceMs(72 * 3_600_000 + 1);
      await record(newCode); // expired
      expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
      // Past the throttle window again for the tests that follow.
      server.clock.advanceMs(16 * 60_000);
    });

    it("should let resendEnrollment void the old code, and refuse it once the officer enrolled", async () => {
      const officer = await register();
      const first = await server.enrollmentCode(officer.email);
      const { resendEnrollment } = await server.ok<{ resendEnrollment: { id: string; enrolled: boolean } }>(RESEND, { id: officer.id }, org.officers[0]!.token);
      expect(resendEnrollment).toEqual({ id: officer.id, enrolled: false });
      const second = await server.enrollmentCode(officer.email, { after: 1 });
      expectError(await server.gql(ENROLL, { code: first, label: "old" }, null), "BAD_USER_INPUT", "ENROLLMENT_CODE_INVALID");
      await enroll(server, second);
      expectError(await server.gql(RESEND, { id: officer.id }, server.operatorToken), "CONFLICT", "ALREADY_ENROLLED");
      const actions = (await auditRows(server)).filter((r) => r.targetId === officer.id).map((r) => `${r.action}:${r.outcome}`);
      // The refused attempt with the old code names no officer: a voided code belongs to nobody.
      expect(actions).toEqual(["officer.register:SUCCESS", "officer.enrollment.resend:SUCCESS", "officer.enroll:SUCCESS", "officer.enrollment.resend:CONFLICT"]);
    });

    it("should exchange a code exactly once when ten enrollments race with it", async () => {
      const officer = await register();
      const code = await server.enrollmentCode(officer.email);
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => server.gql<{ enrollOfficer: { id: string } }>(ENROLL, { code, label: `race ${i}` }, null)));
      expect(results.filter((r) => r.data?.enrollOfficer)).toHaveLength(1);
      expect(results.filter((r) => r.errors?.[0]?.extensions?.reason === "ENROLLMENT_CODE_INVALID")).toHaveLength(9);
      const tokens = (await server.app.db.dataSource.query(`SELECT id FROM api_tokens WHERE "officerId" = '${officer.id}'`)) as unknown[];
      expect(tokens).toHaveLength(1);
      server.clock.advanceMs(16 * 60_000);
    });

    it("should refuse repeated failures from one address with RATE_LIMITED and retryAfterSeconds, even with a good code", async () => {
      server.clock.advanceMs(16 * 60_000);
      const officer = await register();
      const code = await server.enrollmentCode(officer.email);
      for (let i = 0; i < 5; i++) {
        expectError(await server.gql(ENROLL, { code: `kpe_wrong${i}`, label: "x" }, null), "BAD_USER_INPUT", "ENROLLMENT_CODE_INVALID");
      }
      const limited = await server.gql(ENROLL, { code, label: "x" }, null);
      const error = expectError(limited, "RATE_LIMITED", "TOO_MANY_ENROLLMENT_ATTEMPTS");
      expect((error.extensions as { retryAfterSeconds?: number }).retryAfterSeconds).toBe(15 * 60);
      server.clock.advanceMs(15 * 60_000);
      const later = await server.gql<{ enrollOfficer: { officer: { id: string } } }>(ENROLL, { code, label: "x" }, null);
      expect(later.data?.enrollOfficer.officer.id).toBe(officer.id);
    });

    it("should count only active and enrolled officers for keyExchangeReady and submitCsr", async () => {
      const fresh = await createOrganization(server, { officerCount: 0 });
      const a = await addOfficer(server, fresh.id, freshEmail("ready-a"));
      const { registerOfficer: b } = await server.ok<{ registerOfficer: { id: string; email: string } }>(REGISTER_OFFICER, {
        input: { organizationId: fresh.id, name: "Not Yet", email: freshEmail("ready-b") },
      });
      const ready = async () =>
        (await server.ok<{ organization: { keyExchangeReady: boolean; activeOfficerCount: number } }>(
          `query($id: ID!) { organization(id: $id) { keyExchangeReady activeOfficerCount } }`,
          { id: fresh.id },
        )).organization;
      expect(await ready()).toEqual({ keyExchangeReady: false, activeOfficerCount: 2 });
      const refused = await server.gql(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: fresh.id, kind: "MTLS_CLIENT", environment: "MTF", pem: "-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----" } },
        a.token,
      );
      expectError(refused, "PRECONDITION_FAILED", "INSUFFICIENT_OFFICERS");
      await enroll(server, await server.enrollmentCode(b.email));
      expect(await ready()).toEqual({ keyExchangeReady: true, activeOfficerCount: 2 });
    });

    it("should show OFFICER_ENROLLED to the organization's officers and audit the enrollment with the officer as target", async () => {
      const officer = await register();
      await enroll(server, await server.enrollmentCode(officer.email), "desk");
      const seen = await eventually(async () => {
        const { notifications } = await server.ok<{ notifications: { nodes: Array<{ type: string; officer: { id: string } | null }> } }>(
          `{ notifications(types: [OFFICER_ENROLLED], first: 500) { nodes { type officer { id } } } }`,
          {},
          org.officers[0]!.token,
        );
        return notifications.nodes.find((n) => n.officer?.id === officer.id);
      });
      expect(seen.type).toBe("OFFICER_ENROLLED");
      const event = (await auditRows(server)).filter((r) => r.action === "officer.enroll" && r.targetId === officer.id);
      expect(event).toHaveLength(1);
      expect(event[0]).toMatchObject({ outcome: "SUCCESS", organizationId: org.id, actorId: null });
      expect(JSON.parse(event[0]!.details)).toEqual({ tokenId: expect.any(String), label: "desk" });
      // An email about it went to the organization (the enrollment email aside).
      await eventually(async () => (server.sentMail.some((m) => m.subject.startsWith("[KeyPortal] Security officer enrolled")) ? true : undefined));
    });

    it("should have the bootstrap operator enrolled from the start, and make other operators enroll", async () => {
      const { me } = await server.ok<{ me: { officer: { id: string; enrolled: boolean }; organization: { id: string } } }>(`{ me { officer { id enrolled } organization { id } } }`);
      expect(me.officer.enrolled).toBe(true);
      const email = freshEmail("operator");
      const { registerOfficer } = await server.ok<{ registerOfficer: { id: string; role: string } }>(
        `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id role } }`,
        { input: { organizationId: me.organization.id, name: "Second Operator", email } },
      );
      expect(registerOfficer.role).toBe("KMS_OPERATOR");
      expectError(
        await server.gql(`mutation($id: ID!) { createApiToken(officerId: $id, label: "x") { id } }`, { id: registerOfficer.id }, server.operatorToken),
        "FORBIDDEN",
      );
      const grant = await enroll(server, await server.enrollmentCode(email));
      const { me: second } = await server.ok<{ me: { role: string; officer: { enrolled: boolean } } }>(`{ me { role officer { enrolled } } }`, {}, grant.token);
      expect(second).toEqual({ role: "KMS_OPERATOR", officer: { enrolled: true } });
    });
  });
});

describe("the enrollment email in the embedded default (file sink)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { KEYPORTAL_ENROLLMENT_TTL: "1h" } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should land as an .eml file under <data dir>/mail holding the code on its own line, valid for KEYPORTAL_ENROLLMENT_TTL", async () => {
    const org = await createOrganization(server, { officerCount: 0 });
    const email = freshEmail("eml");
    await server.ok(REGISTER_OFFICER, { input: { organizationId: org.id, name: "File Reader", email } });
    const mailDir = path.join(server.dataDir, "mail");
    const file = await eventually(async () =>
      (existsSync(mailDir) ? readdirSync(mailDir) : [])
        .map((f) => path.join(mailDir, f))
        .find((f) => f.endsWith(".eml") && readFileSync(f, "utf8").includes(`To: ${email}`) && readFileSync(f, "utf8").includes("Enrollment code: ")),
    );
    const code = /^Enrollment code: (kpe_[A-Za-z0-9_-]+)$/m.exec(readFileSync(file, "utf8"))?.[1];
    expect(code).toBeDefined();
    server.clock.advanceMs(3_600_000 + 1);
    expectError(await server.gql(ENROLL, { code, label: "late" }, null), "BAD_USER_INPUT", "ENROLLMENT_CODE_INVALID");
  });
});
