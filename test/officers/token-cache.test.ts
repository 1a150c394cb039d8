/**
 * Bearer tokens resolve through a small cache keyed by token hash
 * (src/officers/token-cache.ts). It must actually answer repeated requests,
 * and never serve what lost access: revoked tokens, deactivated officers,
 * expired tokens, on this instance and, through the Redis bus, on another.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/kernel/clock.js";
import type { EventBus } from "../../src/kernel/events.js";
import { InProcessEventBus } from "../../src/kernel/events.js";
import { Role } from "../../src/kernel/domain.js";
import { TokenCache } from "../../src/officers/token-cache.js";
import type { Viewer } from "../../src/viewer.js";
import { activeDelegation, REVOKE_DELEGATION } from "../delegations/helpers.js";
import { collect, latestId } from "../notifications/helpers.js";
import { recordStatements } from "../support/statements.js";
import { available } from "../support/deps.js";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { freshPostgresSchema } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { expectError } from "./helpers.js";

const ME = `{ me { role } }`;
const CREATE = `mutation($id: ID!, $label: String!, $days: Int) { createApiToken(officerId: $id, label: $label, expiresInDays: $days) { id token } }`;
const DEACTIVATE = `mutation($id: ID!) { deactivateOfficer(officerId: $id) { id status } }`;
const tokenReads = (statements: Array<{ sql: string }>) => statements.filter((s) => /api_tokens/.test(s.sql) && /SELECT/i.test(s.sql));

async function lookups(server: TestServer): Promise<{ hit: number; miss: number }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const read = (result: string) => Number(new RegExp(`^keyportal_token_cache_lookups_total\\{result="${result}"\\} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
  return { hit: read("hit"), miss: read("miss") };
}

function viewerOf(tokenId: string, officerId: string, expiresAt: Date | null = null): Viewer {
  return {
    officer: { id: officerId } as Viewer["officer"],
    organization: { id: "org" } as Viewer["organization"],
    role: Role.SECURITY_OFFICER,
    tokenId,
    tokenExpiresAt: expiresAt,
  };
}

describe("the token cache on its own", () => {
  it("should evict by token and by officer, drop the least recently used past its size, and expire by TTL and by token expiry", async () => {
    const clock = new ManualClock("2027-01-01T00:00:00.000Z");
    const bus = new InProcessEventBus();
    const cache = new TokenCache(clock, bus, { size: 2, ttlMs: 30_000 });
    cache.set("h1", viewerOf("t1", "o1"), null, cache.generation);
    cache.set("h2", viewerOf("t2", "o2", new Date("2027-01-01T00:00:10.000Z")), null, cache.generation);
    expect(cache.get("h1")?.viewer.tokenId).toBe("t1");
    cache.set("h3", viewerOf("t3", "o1"), null, cache.generation);
    // h2 was the least recently used.
    expect(cache.get("h2")).toBeUndefined();
    await bus.publish("access.revoked", { officerId: "o1" });
    expect(cache.size).toBe(0);

    cache.set("h2", viewerOf("t2", "o2", new Date("2027-01-01T00:00:10.000Z")), null, cache.generation);
    cache.set("h4", viewerOf("t4", "o4"), null, cache.generation);
    await bus.publish("access.revoked", { tokenId: "t4" });
    expect(cache.get("h4")).toBeUndefined();
    clock.set("2027-01-01T00:00:10.000Z");
    // Expired exactly now: never served from the cache.
    expect(cache.get("h2")).toBeUndefined();
    cache.set("h5", viewerOf("t5", "o5"), null, cache.generation);
    clock.advanceMs(30_000);
    expect(cache.get("h5")).toBeUndefined();
    cache.close();
  });

  it("should not keep a viewer read before a revocation that arrived during the read", async () => {
    const clock = new ManualClock("2027-01-01T00:00:00.000Z");
    const bus = new InProcessEventBus();
    const cache = new TokenCache(clock, bus);
    const before = cache.generation;
    await bus.publish("access.revoked", { tokenId: "t1" });
    cache.set("h1", viewerOf("t1", "o1"), null, before);
    expect(cache.get("h1")).toBeUndefined();
    cache.close();
  });

  it("should be bypassed and emptied while the bus between instances is disconnected", async () => {
    const clock = new ManualClock("2027-01-01T00:00:00.000Z");
    const inner = new InProcessEventBus();
    let up = true;
    // The fault: a bus that reports its connection down, as RedisEventBus does while Redis is away.
    const bus: EventBus = { publish: (t, p) => inner.publish(t, p), subscribe: (t, h) => inner.subscribe(t, h), connected: () => up, close: () => inner.close() };
    const cache = new TokenCache(clock, bus);
    cache.set("h1", viewerOf("t1", "o1"), null, cache.generation);
    expect(cache.usable()).toBe(true);
    up = false;
    expect(cache.usable()).toBe(false);
    up = true;
    expect(cache.usable()).toBe(true);
    expect(cache.get("h1")).toBeUndefined();
    cache.close();
  });
});

describe("the token cache in one instance (SQLite)", () => {
  let server: TestServer;
  let org: TestOrganization;
  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { officerCount: 3 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should answer repeated requests with one token without reading the token again", async () => {
    const officer = org.officers[0]!;
    await server.ok(ME, {}, officer.token);
    const before = await lookups(server);
    const statements = recordStatements(server);
    for (let i = 0; i < 5; i++) expect((await server.ok<{ me: { role: string } }>(ME, {}, officer.token)).me.role).toBe("SECURITY_OFFICER");
    expect(tokenReads(statements)).toEqual([]);
    const after = await lookups(server);
    expect(after.hit - before.hit).toBe(5);
  });

  it("should refuse a cached token at once when it is revoked, and its officer's when deactivated", async () => {
    const officer = org.officers[1]!;
    const { createApiToken } = await server.ok<{ createApiToken: { id: string; token: string } }>(CREATE, { id: officer.id, label: "cached" }, officer.token);
    await server.ok(ME, {}, createApiToken.token);
    await server.ok(ME, {}, createApiToken.token);
    await server.ok(`mutation($id: ID!) { revokeApiToken(tokenId: $id) }`, { id: createApiToken.id }, officer.token);
    expectError(await server.gql(ME, {}, createApiToken.token), "UNAUTHENTICATED");
    // The officer's other token, cached too, until the officer is deactivated.
    await server.ok(ME, {}, officer.token);
    await server.ok(DEACTIVATE, { id: officer.id }, org.officers[0]!.token);
    expectError(await server.gql(ME, {}, officer.token), "UNAUTHENTICATED");
  });

  it("should never serve a cached token past its expiry", async () => {
    const officer = org.officers[2]!;
    const { createApiToken } = await server.ok<{ createApiToken: { id: string; token: string } }>(CREATE, { id: officer.id, label: "short", days: 1 }, officer.token);
    await server.ok(ME, {}, createApiToken.token);
    const before = await lookups(server);
    await server.ok(ME, {}, createApiToken.token);
    expect((await lookups(server)).hit).toBe(before.hit + 1);
    // Within the cache's TTL of the last read, but past the token's expiry.
    server.clock.advanceMs(86_400_000);
    expectError(await server.gql(ME, {}, createApiToken.token), "UNAUTHENTICATED");
  });
});

const twoInstances = (await available("postgres", "redis")) && (await available("openssl"));

describe.skipIf(!twoInstances)("the token cache on two instances (PostgreSQL and Redis)", () => {
  let schema: Awaited<ReturnType<typeof freshPostgresSchema>>;
  let a: TestServer;
  let b: TestServer;
  let org: TestOrganization;
  let msp: TestOrganization;
  const clock = new ManualClock("2027-05-01T10:00:00.000Z");

  beforeAll(async () => {
    schema = await freshPostgresSchema();
    const env = { REDIS_URL: "redis://127.0.0.1:6379", KEYPORTAL_REDIS_PREFIX: `kp-test-${randomBytes(6).toString("hex")}` };
    a = await startTestServer({ databaseUrl: schema.url, env, clock });
    b = await startTestServer({ databaseUrl: schema.url, dataDir: a.dataDir, env, clock });
    org = await createOrganization(a, { officerCount: 3 });
    msp = await createOrganization(a, { kind: "MSP", officerCount: 1 });
  }, 120_000);
  afterAll(async () => {
    await b?.close({ keepData: true });
    await a?.close();
    await schema?.drop();
  });

  /** Warms B's cache with the token and checks that B answers it from there. */
  async function cachedOnB(token: string): Promise<void> {
    await b.ok(ME, {}, token);
    const before = await lookups(b);
    await b.ok(ME, {}, token);
    expect((await lookups(b)).hit).toBe(before.hit + 1);
  }

  it("should refuse on B, on the very next request, a token revoked on A", async () => {
    const officer = org.officers[0]!;
    for (let round = 0; round < 3; round++) {
      const { createApiToken } = await a.ok<{ createApiToken: { id: string; token: string } }>(CREATE, { id: officer.id, label: `round ${round}` }, officer.token);
      await cachedOnB(createApiToken.token);
      await a.ok(`mutation($id: ID!) { revokeApiToken(tokenId: $id) }`, { id: createApiToken.id }, officer.token);
      expectError(await b.gql(ME, {}, createApiToken.token), "UNAUTHENTICATED");
    }
  });

  it("should refuse on B the tokens of an officer deactivated on A, and close the officer's WebSocket on B", async () => {
    const officer = await addOfficer(a, org.id, `cache-deactivated-${Date.now()}@bank.example`);
    await cachedOnB(officer.token);
    let closeCode = 0;
    const onB = collect(b.wsClient(officer.token, { onClose: (code) => (closeCode = code) }), { after: await latestId(b) });
    const seen = await addOfficer(a, org.id, `cache-seen-${Date.now()}@bank.example`);
    await onB.waitFor((n) => n.officer?.id === seen.id, "the subscription on B to be live");
    await a.ok(DEACTIVATE, { id: officer.id }, org.officers[1]!.token);
    expectError(await b.gql(ME, {}, officer.token), "UNAUTHENTICATED");
    await onB.waitForEnd();
    expect(closeCode).toBe(4403);
  });

  it("should cut on B, on the very next request, an MSP's access when the delegation is revoked on A", async () => {
    const delegation = await activeDelegation(a, org, msp);
    const mspOfficer = msp.officers[0]!;
    const ORG = `query($id: ID!) { organization(id: $id) { id } }`;
    await cachedOnB(mspOfficer.token);
    expect((await b.ok<{ organization: { id: string } | null }>(ORG, { id: org.id }, mspOfficer.token)).organization?.id).toBe(org.id);
    await a.ok(REVOKE_DELEGATION, { id: delegation.id }, org.officers[0]!.token);
    const after = await b.gql<{ organization: { id: string } | null }>(ORG, { id: org.id }, mspOfficer.token);
    expect(after.data?.organization ?? null).toBeNull();
    // The MSP's officer still has their own access.
    expect((await b.ok<{ me: { role: string } }>(ME, {}, mspOfficer.token)).me.role).toBe("SECURITY_OFFICER");
  });
});
