import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WorkerHealth } from "../../src/health.js";
import { RedisEventBus } from "../../src/notifications/redis-event-bus.js";
import { startFaultProxy } from "../support/fault-proxy.js";
import { collect, eventually, latestId, sleep } from "../notifications/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { capturingLogger, type FaultyCluster, officerInput, post, REGISTER_OFFICER, startFaultyCluster } from "./helpers.js";

const ready = await available("postgres", "redis");

async function readyz(server: TestServer): Promise<{ status: number; body: Record<string, unknown>; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, ms: performance.now() - started };
}

async function metric(server: TestServer, name: string): Promise<string[]> {
  const text = await (await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  return text.split("\n").filter((line) => line.startsWith(name));
}

describe("a background loop's deadline", () => {
  it("should report a round stalled once past its deadline, log it once, and log the recovery", async () => {
    const { logger, lines } = capturingLogger();
    const health = new WorkerHealth("test loop", logger, 200);
    let release: () => void = () => undefined;
    const stuck = health.round(() => new Promise<void>((resolve) => (release = resolve)));
    await expect(stuck).rejects.toThrow(/ran past 200 ms/);
    expect(health.state).toBe("stalled");
    await expect(health.round(() => new Promise<void>(() => undefined))).rejects.toThrow();
    expect(lines.filter((l) => l.msg.includes("stalled"))).toHaveLength(1);
    await health.round(async () => "done");
    expect(health.state).toBe("ok");
    expect(lines.filter((l) => l.msg === "test loop recovered")).toHaveLength(1);
    release();
  });

  it("should log a failing loop once and then at most once a minute, not once per round", async () => {
    const { logger, lines } = capturingLogger();
    const health = new WorkerHealth("test loop", logger, 1000);
    for (let i = 0; i < 50; i++) await health.round(() => Promise.reject(new Error("connect ECONNREFUSED"))).catch(() => undefined);
    expect(health.state).toBe("failing");
    expect(lines.filter((l) => l.level >= 50)).toHaveLength(1);
  });
});

describe.skipIf(!ready)("readiness and Redis state under faults", () => {
  let cluster: FaultyCluster;
  let org: TestOrganization;
  const logs = capturingLogger();

  beforeAll(async () => {
    cluster = await startFaultyCluster({ loggers: { a: logs.logger } });
    org = await createOrganization(cluster.a.server, { officerCount: 2 });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("should say when Redis goes and when it returns, once each, keep delivering by polling meanwhile, and show it on /readyz and /metrics", async () => {
    const { a, b } = cluster;
    expect((await readyz(a.server)).body).toMatchObject({ status: "ready", redis: "connected" });
    const onA = collect(a.server.wsClient(org.officers[0]!.token), { after: await latestId(a.server) });
    const from = logs.lines.length;
    a.redis.refuse();
    await eventually(async () => ((await readyz(a.server)).body.redis === "unreachable" ? true : undefined), "A to notice Redis is gone");
    const during = await readyz(a.server);
    expect(during.status).toBe(200); // writes and notifications go on through the database
    expect(during.body).toMatchObject({ status: "degraded", redis: "unreachable", database: "ok" });
    expect(await metric(a.server, "keyportal_redis_connected ")).toEqual(["keyportal_redis_connected 0"]);
    // A mutation on B still reaches A's subscriber, by A's poll of the database.
    const made = await post<{ registerOfficer: { id: string } }>(b.server, REGISTER_OFFICER, officerInput(org.id));
    await onA.waitFor((n) => n.officer?.id === made.body.data?.registerOfficer.id, "A's subscriber during the Redis cut", 10_000);
    await sleep(3000); // ioredis retries many times meanwhile
    a.redis.heal();
    await eventually(async () => ((await readyz(a.server)).body.redis === "connected" ? true : undefined), "A to reconnect to Redis", 10_000);
    const lines = logs.lines.slice(from).filter((l) => /redis/i.test(l.msg));
    expect(lines.filter((l) => l.level === 40)).toHaveLength(1);
    expect(lines.filter((l) => l.level === 40)[0]!.msg).toMatch(/unreachable.*poll/);
    expect(lines.filter((l) => l.msg.startsWith("redis is reachable again"))).toHaveLength(1);
    expect(await metric(a.server, "keyportal_redis_connected ")).toEqual(["keyportal_redis_connected 1"]);
    onA.stop();
  }, 40_000);

  it("should notice a silent Redis, drop its connections, and reconnect once it answers again", async () => {
    const { a } = cluster;
    a.redis.silence();
    await eventually(async () => ((await readyz(a.server)).body.redis === "unreachable" ? true : undefined), "A to notice Redis went silent", 15_000);
    a.redis.heal();
    await eventually(async () => ((await readyz(a.server)).body.redis === "connected" ? true : undefined), "A to reconnect to Redis", 15_000);
  }, 40_000);

  it("should answer /readyz 503 within its bound while the database is silent, and 200 again after", async () => {
    const { a } = cluster;
    a.pg.silence();
    const silent = await readyz(a.server);
    expect(silent.status).toBe(503);
    expect(silent.body).toMatchObject({ status: "not ready", database: "unreachable" });
    expect(silent.ms).toBeLessThan(3000);
    expect(await metric(a.server, "keyportal_database_up ")).toEqual(["keyportal_database_up 0"]);
    a.pg.heal();
    await eventually(async () => ((await readyz(a.server)).status === 200 ? true : undefined), "A to be ready again", 10_000);
  }, 30_000);

  it("should answer /readyz 503 while the mutation queue is stuck past its deadline", async () => {
    const { a } = cluster;
    let release: () => void = () => undefined;
    // A fault injected into the unit of work itself: a mutation that does not finish.
    const stuck = a.server.app.services.mutations.run({ action: "test.stuck", targetType: "Test", actor: null }, () => new Promise<void>((resolve) => (release = resolve)));
    await sleep(3200); // the deadline is 3 s
    const during = await readyz(a.server);
    expect(during.status).toBe(503);
    expect(during.body).toMatchObject({ mutationQueue: "stuck" });
    expect(await metric(a.server, "keyportal_mutation_queue_stuck ")).toEqual(["keyportal_mutation_queue_stuck 1"]);
    const queued = await post(a.server, REGISTER_OFFICER, officerInput(org.id));
    expect(queued.status).toBe(503);
    release();
    // Held idle in its transaction past idle_in_transaction_session_timeout, it was ended by the server: that is the point.
    await stuck.catch(() => undefined);
    await eventually(async () => ((await readyz(a.server)).status === 200 ? true : undefined), "the queue to move again");
  }, 30_000);
});

describe.skipIf(!ready)("starting while Redis is unreachable", () => {
  it("should log one line, not one per reconnect attempt, and hear other instances through Redis once it is back", async () => {
    const proxy = await startFaultProxy({ port: 6379 });
    proxy.refuse();
    const { logger, lines } = capturingLogger();
    const prefix = `kp-test-${randomBytes(6).toString("hex")}`;
    const server = await startTestServer({ env: { REDIS_URL: `redis://${proxy.address}`, KEYPORTAL_REDIS_PREFIX: prefix }, overrides: { logger } });
    const other = new RedisEventBus("redis://127.0.0.1:6379", { channelPrefix: prefix, logger });
    try {
      await sleep(3000);
      expect((await readyz(server)).body).toMatchObject({ status: "degraded", redis: "unreachable" });
      const warnings = lines.filter((l) => l.level >= 40 && /redis/i.test(l.msg));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.msg).toMatch(/unreachable.*poll/);
      proxy.heal();
      await eventually(async () => ((await readyz(server)).body.redis === "connected" ? true : undefined), "the instance to reach Redis", 10_000);
      expect(lines.filter((l) => l.msg.startsWith("redis is reachable again"))).toHaveLength(1);
      // Subscribed after all: a signal published by another instance arrives through Redis.
      const heard: number[] = [];
      server.app.bus.subscribe("notifications.committed", (event) => heard.push(event.upTo ?? 0));
      await eventually(async () => {
        await other.publish("notifications.committed", { upTo: 424242 });
        return heard.includes(424242) ? true : undefined;
      }, "a signal from another instance");
    } finally {
      await other.close();
      await server.close();
      await proxy.close();
    }
  }, 40_000);
});
