/**
 * A confirmed publish on the Redis bus (access.revoked: token revocation,
 * officer deactivation) answers only once every other instance subscribed to
 * the topic has run its handlers, so a revoked token is out of every
 * instance's cache when the revoker answers; a subscriber that never
 * confirms holds the answer only for a bounded time, and is logged.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { CONFIRM_TIMEOUT_MS, RedisEventBus } from "../../src/notifications/redis-event-bus.js";
import { available } from "../support/deps.js";
import { capturingLogger } from "../resilience/helpers.js";

const ready = await available("redis");
const REDIS_URL = "redis://127.0.0.1:6379";

describe.skipIf(!ready)("confirmed publishes on the Redis bus", () => {
  const closing: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
  });

  function bus(prefix: string) {
    const { logger, lines } = capturingLogger();
    const b = new RedisEventBus(REDIS_URL, { channelPrefix: prefix, logger });
    closing.push(() => b.close());
    return { bus: b, lines };
  }

  it("should answer only after the other instances ran their handlers, however slow their delivery", async () => {
    const prefix = `kp-confirm-${randomBytes(6).toString("hex")}`;
    const a = bus(prefix);
    const instances = [bus(prefix), bus(prefix), bus(prefix)];
    const seen: string[][] = instances.map(() => []);
    a.bus.subscribe("access.revoked", () => undefined);
    instances.forEach((i, n) => i.bus.subscribe("access.revoked", (p) => void seen[n]!.push(p.tokenId ?? "")));
    await Promise.all([a.bus, ...instances.map((i) => i.bus)].map((b) => b.ready()));
    for (let round = 0; round < 20; round++) {
      const tokenId = `t${round}`;
      await a.bus.publish("access.revoked", { tokenId }, { confirm: true });
      // Checked synchronously after the answer: nothing else got a turn to deliver late.
      for (const s of seen) expect(s.at(-1)).toBe(tokenId);
    }
    expect(a.lines.filter((l) => l.msg.includes("confirmed"))).toEqual([]);
  });

  it("should answer after a bounded wait, and say so, when a subscriber never confirms", async () => {
    const prefix = `kp-confirm-${randomBytes(6).toString("hex")}`;
    const a = bus(prefix);
    a.bus.subscribe("access.revoked", () => undefined);
    const mute = new Redis(REDIS_URL);
    closing.push(() => mute.quit());
    await mute.subscribe(`${prefix}:access.revoked`);
    await a.bus.ready();
    const started = performance.now();
    await a.bus.publish("access.revoked", { officerId: "o1" }, { confirm: true });
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(CONFIRM_TIMEOUT_MS - 50);
    expect(a.lines.filter((l) => l.msg === "not every subscriber confirmed a signal in time; answering anyway")).toHaveLength(1);
  }, 15_000);
});
