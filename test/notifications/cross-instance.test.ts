import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/kernel/clock.js";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { freshPostgresSchema } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { collect, eventually, issueCertificate, latestId, type SmtpSink, startSmtpSink } from "./helpers.js";

const ready = (await available("postgres", "redis")) && (await available("openssl"));

describe.skipIf(!ready)("two instances on one PostgreSQL and Redis", () => {
  let schema: Awaited<ReturnType<typeof freshPostgresSchema>>;
  let a: TestServer;
  let b: TestServer;
  let org: TestOrganization;
  let smtp: SmtpSink;
  const clock = new ManualClock("2027-05-01T10:00:00.000Z");
  const tmp = makeTempDir("kp-cross-");
  const shared = makeTempDir("kp-cross-data-");

  beforeAll(async () => {
    schema = await freshPostgresSchema();
    // A channel prefix of this run's own, so parallel runs on the machine's Redis never hear each other.
    smtp = await startSmtpSink();
    const env = {
      REDIS_URL: "redis://127.0.0.1:6379",
      KEYPORTAL_REDIS_PREFIX: `kp-test-${randomBytes(6).toString("hex")}`,
      SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    };
    // One data directory as well: both instances use the same CA key files.
    a = await startTestServer({ databaseUrl: schema.url, dataDir: shared.path, env, clock });
    b = await startTestServer({ databaseUrl: schema.url, dataDir: shared.path, env, clock });
    org = await createOrganization(a, { officerCount: 2 });
  });
  afterAll(async () => {
    await b?.close({ keepData: true });
    await a?.close({ keepData: true });
    await schema?.drop();
    await smtp?.close();
    tmp.cleanup();
    shared.cleanup();
  });

  // The first instance created the operator; the second's bootstrap token was never used.
  const operator = () => a.operatorToken;

  it("should deliver to a subscriber on A what a mutation on B caused", async () => {
    const onA = collect(a.wsClient(org.officers[0]!.token), { after: await latestId(a) });
    // A hears B's commit through Redis (not only through its safety-net poll of the database).
    const heardOnA: number[] = [];
    const unsubscribe = a.app.bus.subscribe("notifications.committed", (event) => heardOnA.push(event.upTo ?? 0));
    const { registerOfficer } = await b.ok<{ registerOfficer: { id: string } }>(
      `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
      { input: { organizationId: org.id, name: "Officer via B", email: `via-b-${Date.now()}@bank.example` } },
      operator(),
    );
    const received = await onA.waitFor((n) => n.officer?.id === registerOfficer.id, "A's subscriber to hear of B's mutation");
    expect(received).toMatchObject({ type: "OFFICER_REGISTERED", organization: { id: org.id } });
    await eventually(() => (heardOnA.includes(Number(received.id)) ? true : undefined), "A's bus to carry B's signal");
    unsubscribe();
    onA.stop();
  });

  it("should resume on B after a cursor received on A, with the history in between", async () => {
    const onA = collect(a.wsClient(org.officers[1]!.token), { after: await latestId(a) });
    const register = (email: string) =>
      b.ok<{ registerOfficer: { id: string } }>(
        `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
        { input: { organizationId: org.id, name: `Officer ${email}`, email } },
        operator(),
      );
    const one = (await register(`one-${Date.now()}@bank.example`)).registerOfficer;
    const cursor = (await onA.waitFor((n) => n.officer?.id === one.id, "the first event on A")).id;
    onA.stop();
    const two = (await register(`two-${Date.now()}@bank.example`)).registerOfficer;
    const onB = collect(b.wsClient(org.officers[1]!.token), { after: cursor });
    const three = (await a.ok<{ registerOfficer: { id: string } }>(
      `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
      { input: { organizationId: org.id, name: "Officer three", email: `three-${Date.now()}@bank.example` } },
      operator(),
    )).registerOfficer;
    await onB.waitFor((n) => n.officer?.id === three.id, "B's subscriber to reach the event made on A");
    expect(onB.items.map((n) => n.officer?.id)).toEqual([two.id, three.id]);
    onB.stop();
  });

  it("should close on A the subscription of a token revoked on B", async () => {
    const officer = org.officers[0]!;
    const { createApiToken } = await a.ok<{ createApiToken: { id: string; token: string } }>(
      `mutation($id: ID!) { createApiToken(officerId: $id, label: "cross") { id token } }`,
      { id: officer.id },
      officer.token,
    );
    let closeCode = 0;
    const onA = collect(a.wsClient(createApiToken.token, { onClose: (code) => (closeCode = code) }), { after: await latestId(a) });
    const { registerOfficer } = await b.ok<{ registerOfficer: { id: string } }>(
      `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
      { input: { organizationId: org.id, name: "Officer before revocation", email: `pre-${Date.now()}@bank.example` } },
      operator(),
    );
    await onA.waitFor((n) => n.officer?.id === registerOfficer.id, "the subscription on A to be live");
    await b.ok(`mutation($id: ID!) { revokeApiToken(tokenId: $id) }`, { id: createApiToken.id }, officer.token);
    await onA.waitForEnd();
    expect(closeCode).toBe(4403);
  });

  it("should emit each expiry reminder once when both instances scan at the same time", async () => {
    await issueCertificate(a, tmp.path, org, { validityDays: 20 });
    const scan = (server: TestServer) => server.ok<{ runExpiryScan: number }>(`mutation { runExpiryScan }`, {}, operator());
    const counts = await Promise.all([scan(a), scan(b), scan(a), scan(b)]);
    expect(counts.reduce((sum, c) => sum + c.runExpiryScan, 0)).toBe(1);
    expect(await Promise.all([scan(a), scan(b)])).toEqual([{ runExpiryScan: 0 }, { runExpiryScan: 0 }]);
  });

  it("should send each email once although both instances' workers wake on every commit", async () => {
    await Promise.all([a.app.services.emailWorker.runOnce(), b.app.services.emailWorker.runOnce(), a.app.services.emailWorker.runOnce()]);
    const rows = (await a.app.db.dataSource.query(`SELECT id, status FROM email_deliveries`)) as Array<{ id: string; status: string }>;
    expect(rows.length).toBeGreaterThan(10);
    expect(rows.every((r) => r.status === "SENT")).toBe(true);
    // The enrollment emails are sent from memory, not from the delivery table.
    const messageIds = smtp.messages.filter((m) => !m.subject.startsWith("[KeyPortal] Your enrollment code")).map((m) => m.messageId);
    expect(messageIds).toHaveLength(rows.length);
    expect(new Set(messageIds).size).toBe(rows.length);
  });
});
