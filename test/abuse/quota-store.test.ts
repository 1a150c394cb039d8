/**
 * The quota primitives other features build on (a failure throttle is
 * `take(key, 0)` to ask, `take(key, 1)` per failure), in process and in Redis.
 */
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { InProcessQuotaStore, type QuotaStore, RedisQuotaStore } from "../../src/quotas.js";
import { available } from "../support/deps.js";

const redisReady = await available("redis");

function suite(name: string, make: () => { store: QuotaStore; advance?: (ms: number) => void }, skip = false) {
  describe.skipIf(skip)(`${name} quota store`, () => {
    const made: QuotaStore[] = [];
    const fresh = () => {
      const m = make();
      made.push(m.store);
      return m;
    };
    afterAll(async () => {
      for (const store of made) await store.close();
    });

    it("should allow a burst, then refuse with the seconds until the next unit", async () => {
      const { store } = fresh();
      const rate = { perSecond: 0.5, burst: 3 };
      for (let i = 0; i < 3; i++) expect(await store.take("k", 1, rate)).toEqual({ allowed: true });
      expect(await store.take("k", 1, rate)).toEqual({ allowed: false, retryAfterSeconds: 2 });
    });

    it("should answer cost 0 as a question: allowed while a unit is left, taking nothing", async () => {
      const { store } = fresh();
      const rate = { perSecond: 0.01, burst: 2 };
      expect(await store.take("t", 0, rate)).toEqual({ allowed: true });
      expect(await store.take("t", 0, rate)).toEqual({ allowed: true });
      await store.take("t", 1, rate);
      await store.take("t", 1, rate);
      expect(await store.take("t", 0, rate)).toMatchObject({ allowed: false });
    });

    it("should hold weighted leases up to the limit and give them back on release", async () => {
      const { store } = fresh();
      const a = await store.acquire("held", 3, 5);
      expect(a).not.toBeNull();
      expect(await store.acquire("held", 3, 5)).toBeNull();
      const b = await store.acquire("held", 2, 5);
      expect(b).not.toBeNull();
      a!.release();
      a!.release(); // twice is once
      await new Promise((r) => setTimeout(r, 50));
      expect(await store.acquire("held", 3, 5)).not.toBeNull();
      expect(await store.acquire("held", 1, 5)).toBeNull();
    });
  });
}

let now = 0;
suite("in-process", () => ({ store: new InProcessQuotaStore(() => now), advance: (ms) => (now += ms) }));
suite(
  "Redis",
  () => ({ store: new RedisQuotaStore("redis://127.0.0.1:6379", `kp-test-${randomBytes(6).toString("hex")}`, pino({ level: "silent" })) }),
  !redisReady,
);

describe("in-process quota store refill", () => {
  it("should refill at its rate on the injected clock", async () => {
    let t = 0;
    const store = new InProcessQuotaStore(() => t);
    const rate = { perSecond: 2, burst: 1 };
    expect(await store.take("r", 1, rate)).toEqual({ allowed: true });
    expect(await store.take("r", 1, rate)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    t += 500;
    expect(await store.take("r", 1, rate)).toEqual({ allowed: true });
  });
});
