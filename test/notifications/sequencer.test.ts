/**
 * The sequencer on PostgreSQL (docs/sequencer.md): two instances on one
 * database and one Redis bus take mutations concurrently; positions and the
 * audit chain are assigned after commit, one round at a time. Subscribers on
 * either instance, also resuming mid-stream, see every notification once, in
 * position order; the chain verifies and tampering is found; a round that
 * fails rolls back and the next one takes its rows; when the lease holder
 * dies the other instance takes the lease and sequences what it left.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/kernel/clock.js";
import { DatabaseLease } from "../../src/notifications/lease.js";
import { Sequencer } from "../../src/notifications/sequencer.js";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { freshPostgresSchema } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { type Collector, collect, eventually, latestId } from "./helpers.js";

const ready = await available("postgres", "redis");
const LEASE_TTL_MS = 3000;

describe.skipIf(!ready)("the sequencer with two instances on one PostgreSQL and Redis", () => {
  let schema: Awaited<ReturnType<typeof freshPostgresSchema>>;
  let a: TestServer;
  let b: TestServer;
  let org: TestOrganization;
  const clock = new ManualClock("2027-05-01T10:00:00.000Z");
  const shared = makeTempDir("kp-seq-data-");

  beforeAll(async () => {
    schema = await freshPostgresSchema();
    const env = {
      REDIS_URL: "redis://127.0.0.1:6379",
      KEYPORTAL_REDIS_PREFIX: `kp-test-${randomBytes(6).toString("hex")}`,
      KEYPORTAL_LEASE_TTL: `${LEASE_TTL_MS / 1000}s`,
    };
    a = await startTestServer({ databaseUrl: schema.url, dataDir: shared.path, env, clock });
    b = await startTestServer({ databaseUrl: schema.url, dataDir: shared.path, env, clock });
    org = await createOrganization(a, { officerCount: 2 });
  });
  afterAll(async () => {
    await b?.close({ keepData: true });
    await a?.close({ keepData: true });
    await schema?.drop();
    shared.cleanup();
  });

  const operator = () => a.operatorToken;
  const register = (server: TestServer, tag: string) =>
    server
      .ok<{ registerOfficer: { id: string } }>(
        `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
        { input: { organizationId: org.id, name: `Officer ${tag}`, email: `${tag}-${randomBytes(4).toString("hex")}@bank.example` } },
        operator(),
      )
      .then((r) => r.registerOfficer.id);

  /** The viewer's history after the cursor, through the API, every page. */
  async function history(server: TestServer, token: string, after: string): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | null = after;
    for (;;) {
      const { notifications } = await server.ok<{ notifications: { nodes: Array<{ id: string }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
        `query($after: String) { notifications(first: 50, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }`,
        { after: cursor },
        token,
      );
      ids.push(...notifications.nodes.map((n) => n.id));
      if (!notifications.pageInfo.hasNextPage) return ids;
      cursor = notifications.pageInfo.endCursor;
    }
  }

  const idsOf = (c: Collector) => c.items.map((n) => n.id);
  const ascending = (ids: string[]) => ids.every((id, i) => i === 0 || Number(id) > Number(ids[i - 1]));
  const verify = async (server: TestServer) =>
    (await server.ok<{ verifyAuditLog: { valid: boolean; checkedEvents: number; firstInvalidSeq: number | null } }>(`{ verifyAuditLog { valid checkedEvents firstInvalidSeq } }`, {}, operator()))
      .verifyAuditLog;
  const unsequenced = async (server: TestServer) =>
    Number(((await server.app.db.dataSource.query(`SELECT COUNT(*) AS n FROM notifications WHERE position IS NULL`)) as Array<{ n: string }>)[0]!.n) +
    Number(((await server.app.db.dataSource.query(`SELECT COUNT(*) AS n FROM audit_pending`)) as Array<{ n: string }>)[0]!.n);

  it("should deliver concurrent mutations of both instances to a subscriber on each, once each and in position order, also after resuming mid-stream", async () => {
    const token = org.officers[0]!.token;
    const start = await latestId(a);
    const onA = collect(a.wsClient(token), { after: start });
    const onB = collect(b.wsClient(token), { after: start });
    const created: string[] = [];
    const burst = async (round: number) => {
      const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => register(i % 2 === 0 ? a : b, `r${round}-${i}`)));
      created.push(...ids);
    };
    await burst(1);
    // Resume on B from a cursor A's subscriber received in the middle of the first burst, while the second runs.
    const cursor = (await onA.waitFor((n) => n.officer?.id === created[5], "A's subscriber to reach the middle of the first burst")).id;
    const secondBurst = burst(2);
    const resumed = collect(b.wsClient(token), { after: cursor });
    await secondBurst;
    await burst(3);

    const expected = await history(b, token, start);
    expect(expected).toHaveLength(created.length);
    expect(ascending(expected)).toBe(true);
    for (const c of [onA, onB, resumed]) {
      await c.waitFor((n) => n.id === expected.at(-1), "every notification to arrive", 20_000);
      expect(c.errors).toEqual([]);
      expect(ascending(idsOf(c))).toBe(true);
    }
    expect(idsOf(onA)).toEqual(expected);
    expect(idsOf(onB)).toEqual(expected);
    expect(idsOf(resumed)).toEqual(expected.slice(expected.indexOf(cursor) + 1));
    expect(new Set(onA.items.map((n) => n.officer?.id))).toEqual(new Set(created));
    for (const c of [onA, onB, resumed]) c.stop();

    // Every mutation answered after its round: nothing waits, and the chain holds every event.
    expect(await unsequenced(a)).toBe(0);
    const events = Number(((await a.app.db.dataSource.query(`SELECT COUNT(*) AS n FROM audit_events`)) as Array<{ n: string }>)[0]!.n);
    expect(await verify(b)).toEqual({ valid: true, checkedEvents: events, firstInvalidSeq: null });
  });

  it("should commit a mutation while another one's transaction is still open, on either instance", async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const spec = { action: "test.hold", targetType: "Test", actor: null };
    let holding = false;
    const held = a.app.services.mutations.run(spec, async ({ em }) => {
      await em.query(`SELECT 1`);
      holding = true;
      await gate;
      return "held";
    });
    await eventually(() => (holding ? true : undefined), "the first transaction to be open");
    const sameInstance = await a.app.services.mutations.run(spec, async () => "passed on A");
    const otherInstance = await register(b, "meanwhile");
    expect([sameInstance, typeof otherInstance]).toEqual(["passed on A", "string"]);
    open();
    expect(await held).toBe("held");
    expect(await unsequenced(a)).toBe(0);
  });

  it("should find an event changed after the sequencer chained it", async () => {
    const [victim] = (await a.app.db.dataSource.query(`SELECT seq, details FROM audit_events WHERE action = 'officer.register' ORDER BY seq DESC LIMIT 1`)) as Array<{
      seq: string;
      details: string;
    }>;
    const tamper = (details: string) =>
      a.app.db.dataSource.transaction(async (em) => {
        await em.query(`ALTER TABLE audit_events DISABLE TRIGGER USER`);
        await em.query(`UPDATE audit_events SET details = $1 WHERE seq = $2`, [details, victim!.seq]);
        await em.query(`ALTER TABLE audit_events ENABLE TRIGGER USER`);
      });
    await tamper(`{"email":"someone.else@bank.example"}`);
    try {
      expect(await verify(a)).toMatchObject({ valid: false, firstInvalidSeq: Number(victim!.seq) });
    } finally {
      await tamper(victim!.details);
    }
    expect((await verify(a)).valid).toBe(true);
  });

  it("should roll a failed round back whole and, when the lease holder dies, let the other instance take over with no gap", async () => {
    await eventually(() => (a.app.services.sequencer.isLeader !== b.app.services.sequencer.isLeader ? true : undefined), "one instance to hold the lease");
    const [dead, alive] = a.app.services.sequencer.isLeader ? [a, b] : [b, a];
    const token = org.officers[1]!.token;
    const start = await latestId(alive);
    const onAlive = collect(alive.wsClient(token), { after: start });
    const before = await register(alive, "before");
    await onAlive.waitFor((n) => n.officer?.id === before, "the first notification");

    // The holder dies: no release, no more rounds. What it commits now waits without a position.
    await dead.app.services.sequencer.stop({ release: false });
    const orphans = await Promise.all([register(dead, "orphan-1"), register(dead, "orphan-2"), register(dead, "orphan-3")]);
    expect(await unsequenced(dead)).toBeGreaterThanOrEqual(6);

    // A round that fails before it commits leaves every row as it was.
    const faulty = new Sequencer(
      { db: dead.app.db, bus: dead.app.bus, audit: dead.app.services.audit, lease: new DatabaseLease(dead.app.db, clock, "lease:sequencer-test", LEASE_TTL_MS), logger: dead.app.logger },
      {
        beforeCommit: async (round) => {
          expect(round.notifications).toBe(3);
          throw new Error("injected: the connection dropped mid-round");
        },
      },
    );
    await expect(faulty.round()).rejects.toThrow(/mid-round/);
    expect(await unsequenced(dead)).toBeGreaterThanOrEqual(6);
    expect(onAlive.items.map((n) => n.officer?.id)).toEqual([before]);

    // The lease lapses; the other instance's sweep takes it and sequences what the dead one left.
    expect(alive.app.services.sequencer.isLeader).toBe(false);
    clock.advanceMs(LEASE_TTL_MS + 1000);
    await eventually(() => (alive.app.services.sequencer.isLeader ? true : undefined), "the other instance to take the lease", 10_000);
    await eventually(async () => ((await unsequenced(alive)) === 0 ? true : undefined), "the orphaned rows to be sequenced", 10_000);
    const after = await register(alive, "after");
    await onAlive.waitFor((n) => n.officer?.id === after, "the notification made after the takeover");

    const expected = await history(alive, token, start);
    expect(idsOf(onAlive)).toEqual(expected);
    expect(ascending(expected)).toBe(true);
    expect(onAlive.items.map((n) => n.officer?.id)).toEqual([before, ...orphans.map(() => expect.any(String)), after]);
    expect(new Set(onAlive.items.slice(1, 4).map((n) => n.officer?.id))).toEqual(new Set(orphans));
    onAlive.stop();
    const events = Number(((await alive.app.db.dataSource.query(`SELECT COUNT(*) AS n FROM audit_events`)) as Array<{ n: string }>)[0]!.n);
    expect(await verify(alive)).toEqual({ valid: true, checkedEvents: events, firstInvalidSeq: null });
  });
});
