import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, eventually, latestId, sleep } from "../notifications/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type FaultyCluster, officerInput, post, REGISTER_OFFICER, startFaultyCluster } from "./helpers.js";

const ready = await available("postgres", "redis");

describe.skipIf(!ready)("PostgreSQL faults under two instances", () => {
  let cluster: FaultyCluster;
  let org: TestOrganization;

  beforeAll(async () => {
    cluster = await startFaultyCluster();
    org = await createOrganization(cluster.a.server, { officerCount: 2 });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("should resume writes and live notifications on every instance within 10 s after a silent partition heals", async () => {
    const { a, b } = cluster;
    const after = await latestId(a.server);
    const onA = collect(a.server.wsClient(org.officers[0]!.token), { after });
    const onB = collect(b.server.wsClient(org.officers[1]!.token), { after });
    const warm = await post<{ registerOfficer: { id: string } }>(a.server, REGISTER_OFFICER, officerInput(org.id));
    expect(warm.status).toBe(200);
    await onA.waitFor((n) => n.officer?.id === warm.body.data!.registerOfficer.id, "A's subscriber before the partition");
    await onB.waitFor((n) => n.officer?.id === warm.body.data!.registerOfficer.id, "B's subscriber before the partition");

    a.pg.silence();
    b.pg.silence();
    // Writes during the partition fail cleanly and retryably instead of hanging.
    const during = await Promise.all([
      post(a.server, REGISTER_OFFICER, officerInput(org.id), { timeoutMs: 9000 }),
      post(a.server, REGISTER_OFFICER, officerInput(org.id), { timeoutMs: 9000 }),
      post(b.server, REGISTER_OFFICER, officerInput(org.id), { timeoutMs: 9000 }),
    ]);
    for (const outcome of during) {
      expect(outcome.status).toBe(503);
      expect(outcome.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(outcome.body.errors?.[0]?.extensions).toEqual({ code: "INTERNAL_SERVER_ERROR", reason: "UNAVAILABLE" });
      expect(JSON.stringify(outcome.body)).not.toMatch(/SELECT|INSERT|pg|timeout|stack/i);
    }
    a.pg.heal();
    b.pg.heal();
    const healedAt = performance.now();

    // Within 10 s of the heal, a write on each instance commits and both subscribers hear both.
    const write = async (server: typeof a.server) =>
      eventually(
        async () => {
          const outcome = await post<{ registerOfficer: { id: string } }>(server, REGISTER_OFFICER, officerInput(org.id), { timeoutMs: 9000 });
          return outcome.status === 200 && outcome.body.data ? outcome.body.data.registerOfficer.id : undefined;
        },
        "a write to commit after the heal",
        10_000,
      );
    const [fromA, fromB] = await Promise.all([write(a.server), write(b.server)]);
    for (const collector of [onA, onB]) {
      for (const id of [fromA, fromB]) await collector.waitFor((n) => n.officer?.id === id, "a live notification after the heal", 10_000);
    }
    expect(performance.now() - healedAt).toBeLessThan(10_000);
    onA.stop();
    onB.stop();
  }, 40_000);

  it("should answer 503 with Retry-After while the database refuses connections, and serve again once it is back", async () => {
    const { a } = cluster;
    a.pg.refuse();
    const mutation = await post(a.server, REGISTER_OFFICER, officerInput(org.id));
    const query = await post(a.server, `{ organizations { id } }`, {});
    for (const outcome of [mutation, query]) {
      expect(outcome.status).toBe(503);
      expect(outcome.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(outcome.body.errors?.[0]?.extensions).toEqual({ code: "INTERNAL_SERVER_ERROR", reason: "UNAVAILABLE" });
    }
    a.pg.heal();
    await eventually(async () => ((await post(a.server, REGISTER_OFFICER, officerInput(org.id))).status === 200 ? true : undefined), "a write after the database returns");
  }, 30_000);

  it("should refuse a mutation that waited past its deadline behind a stuck one, without running it", async () => {
    const { a } = cluster;
    a.pg.silence();
    const started = performance.now();
    const outcomes = await Promise.all(Array.from({ length: 4 }, () => post(a.server, REGISTER_OFFICER, officerInput(org.id), { timeoutMs: 9000 })));
    expect(outcomes.every((o) => o.status === 503)).toBe(true);
    // Deadline 3 s, a statement 1 s (+1 s grace): nothing waited anywhere near forever.
    expect(performance.now() - started).toBeLessThan(8000);
    a.pg.heal();
    await sleep(100);
  }, 30_000);
});
