/**
 * The Redis bus keeps every channel it was asked for subscribed, whatever
 * the connection went through: a SUBSCRIBE written while the connection was
 * still in its handshake (ioredis writes SUBSCRIBE before the ready check
 * answers) and then lost with that connection is sent again once a
 * connection is ready, so the instance hears the other instances again.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { RedisEventBus } from "../../src/notifications/redis-event-bus.js";
import { available } from "../support/deps.js";
import { startFaultProxy } from "../support/fault-proxy.js";
import { capturingLogger } from "../resilience/helpers.js";
import { eventually } from "./helpers.js";

const ready = await available("redis");

describe.skipIf(!ready)("the Redis bus's subscriptions across broken connections", () => {
  const closing: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const close of closing.splice(0).reverse()) await close();
  });

  it("should subscribe again a channel whose SUBSCRIBE went out during a handshake that never finished", async () => {
    const prefix = `kp-resub-${randomBytes(6).toString("hex")}`;
    const proxy = await startFaultProxy({ port: 6379 });
    closing.push(() => proxy.close());
    // A partition from the start: the connections open, their handshakes get no answer.
    proxy.silence();
    const { logger } = capturingLogger();
    const bus = new RedisEventBus(`redis://${proxy.address}`, { channelPrefix: prefix, logger });
    closing.push(() => bus.close());
    const other = new RedisEventBus("redis://127.0.0.1:6379", { channelPrefix: prefix, logger });
    closing.push(() => other.close());
    await eventually(async () => (proxy.openConnections >= 2 ? true : undefined), "both connections to reach the proxy", 5000);

    const heard: number[] = [];
    // Asked for mid-handshake: the SUBSCRIBE is written into the silent connection.
    bus.subscribe("notifications.committed", (event) => heard.push(event.upTo ?? 0));
    await new Promise((resolve) => setTimeout(resolve, 100));
    proxy.heal();
    proxy.reset();

    await eventually(async () => (bus.connected() ? true : undefined), "the bus to reconnect", 10_000);
    await eventually(async () => {
      await other.publish("notifications.committed", { upTo: 4711 });
      return heard.includes(4711) ? true : undefined;
    }, "a signal from another instance after the reconnect", 5000);
    expect(heard).toContain(4711);
  }, 30_000);

  it("should keep its subscriptions through a reset once subscribed, each channel once", async () => {
    const prefix = `kp-resub-${randomBytes(6).toString("hex")}`;
    const proxy = await startFaultProxy({ port: 6379 });
    closing.push(() => proxy.close());
    const { logger } = capturingLogger();
    const bus = new RedisEventBus(`redis://${proxy.address}`, { channelPrefix: prefix, logger });
    closing.push(() => bus.close());
    const other = new RedisEventBus("redis://127.0.0.1:6379", { channelPrefix: prefix, logger });
    closing.push(() => other.close());
    const heard: number[] = [];
    bus.subscribe("notifications.committed", (event) => heard.push(event.upTo ?? 0));
    await bus.ready();
    for (let round = 1; round <= 3; round++) {
      proxy.reset();
      await eventually(async () => (bus.connected() ? true : undefined), "the bus to reconnect", 10_000);
      await eventually(async () => {
        await other.publish("notifications.committed", { upTo: round });
        return heard.includes(round) ? true : undefined;
      }, `a signal after reset ${round}`, 5000);
    }
    // Subscribed again after each reset, yet one message is delivered once, not once per SUBSCRIBE sent.
    await new Promise((resolve) => setTimeout(resolve, 200)); // the retried publishes still in flight land first
    heard.length = 0;
    await other.publish("notifications.committed", { upTo: 99 });
    await eventually(async () => (heard.includes(99) ? true : undefined), "the last signal", 5000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(heard).toEqual([99]);
  }, 30_000);
});
