import { describe, expect, it } from "vitest";
import { EVENT_TOPICS, InProcessEventBus, type EventPayload } from "../../src/kernel/events.js";

describe("the event map", () => {
  it("delivers each topic's payload to that topic's handlers only", async () => {
    const bus = new InProcessEventBus();
    const committed: EventPayload<"notifications.committed">[] = [];
    const revoked: EventPayload<"access.revoked">[] = [];
    bus.subscribe("notifications.committed", (e) => committed.push(e));
    bus.subscribe("access.revoked", (e) => revoked.push(e));
    await bus.publish("notifications.committed", { upTo: 7 });
    await bus.publish("access.revoked", { officerId: "o-1" });
    expect(committed).toEqual([{ upTo: 7 }]);
    expect(revoked).toEqual([{ officerId: "o-1" }]);
    expect([...EVENT_TOPICS].sort()).toEqual(["access.revoked", "notifications.committed"]);
    await bus.close();
  });
});
