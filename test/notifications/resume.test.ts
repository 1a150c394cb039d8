import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InProcessEventBus } from "../../src/kernel/events.js";
import { NotificationDispatcher } from "../../src/notifications/dispatcher.js";
import type { Notification } from "../../src/notifications/notification.entity.js";
import { NotificationStore } from "../../src/notifications/notification.store.js";
import { NotificationRefs } from "../../src/notifications/refs.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { collect, eventually, history } from "./helpers.js";

const hasPostgres = await available("postgres");

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(db === "postgres" && !hasPostgres)(`resuming notifications on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    let seq = 0;
    // Registration alone (one notification each); these officers never need a token of their own.
    const register = async (): Promise<{ id: string }> => {
      const email = `resume-${db}-${(seq += 1)}-${Date.now()}@bank.example`;
      const { registerOfficer } = await server.ok<{ registerOfficer: { id: string } }>(
        `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
        { input: { organizationId: org.id, name: `Officer ${email}`, email } },
      );
      return registerOfficer;
    };

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { officerCount: 2 });
      for (let i = 0; i < 10; i++) await register();
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should replay exactly the history after the cursor, element for element, while writes continue", async () => {
      const before = await history(server, org.officers[0]!.token, null);
      const cursor = before[Math.floor(before.length / 2)]!.id;

      // Writers in the background: sequential and concurrent registrations, before, during and after the subscribe.
      let writing = true;
      const writers = [0, 1, 2].map(async () => {
        for (let i = 0; i < 12 && writing; i++) await register();
      });
      const sub = collect(server.wsClient(org.officers[1]!.token), { after: cursor });
      await Promise.all(writers);
      writing = false;
      const last = await register();
      await sub.waitFor((n) => n.officer?.id === last.id, "the replay to reach the last write", 20_000);

      const expected = await history(server, org.officers[0]!.token, cursor);
      const received = sub.items.slice(0, sub.items.findIndex((n) => n.officer?.id === last.id) + 1);
      expect(received.length).toBeGreaterThan(30);
      expect(received).toEqual(expected);
      expect(new Set(received.map((n) => n.id)).size).toBe(received.length);
      sub.stop();
    });

    it("should filter the replay and the live part by type", async () => {
      const all = await history(server, server.operatorToken, null);
      const sub = collect(server.wsClient(server.operatorToken), { after: "0", types: ["OFFICER_DEACTIVATED"] });
      const target = await register();
      await server.ok(`mutation($id: ID!) { deactivateOfficer(officerId: $id) { id } }`, { id: target.id }, org.officers[0]!.token);
      const deactivated = await sub.waitFor((n) => n.officer?.id === target.id, "the deactivation");
      expect(deactivated.type).toBe("OFFICER_DEACTIVATED");
      expect(sub.items.every((n) => n.type === "OFFICER_DEACTIVATED")).toBe(true);
      expect(sub.items.length).toBe(all.filter((n) => n.type === "OFFICER_DEACTIVATED").length + 1);
      sub.stop();
    });

    it("should give a slow subscriber with tiny buffers every row once and in order", async () => {
      // A dispatcher of its own with limits far below the traffic: replay in pages of 3, live buffer of 4, queue of 5.
      const bus = new InProcessEventBus();
      const unforward = server.app.bus.subscribe("notifications.committed", (e) => void bus.publish("notifications.committed", e));
      // An injected fault: every history read answers 50 ms late, so rows commit between a page's snapshot and its use.
      class LateHistory extends NotificationStore {
        override async visibleAfter(...args: Parameters<NotificationStore["visibleAfter"]>): Promise<Notification[]> {
          const rows = await super.visibleAfter(...args);
          await new Promise((resolve) => setTimeout(resolve, 50));
          return rows;
        }
      }
      const dispatcher = new NotificationDispatcher(
        { store: new LateHistory(server.app.db), policy: server.app.services.policy, refs: new NotificationRefs(server.app.db), bus, logger: server.app.logger },
        { batchSize: 7, limits: { pageSize: 3, maxBuffered: 4, maxQueued: 5 } },
      );
      await dispatcher.start();
      try {
        const viewer = await server.app.services.officers.authenticate(org.officers[0]!.token);
        const before = await history(server, org.officers[0]!.token, null);
        const cursor = Number(before[3]!.id);
        const stream = dispatcher.open(viewer!, { after: cursor, types: null });
        const received: Notification[] = [];
        let paused = true;
        const consume = (async () => {
          for (;;) {
            while (paused) await new Promise((resolve) => setTimeout(resolve, 10));
            const next = await stream.next();
            if (next.done) return;
            received.push(next.value);
            await new Promise((resolve) => setTimeout(resolve, 40)); // slower than the writers
          }
        })();
        const caughtUp = async () => {
          const lastId = Number((await history(server, org.officers[0]!.token, null)).at(-1)!.id);
          await eventually(() => (received.some((n) => n.position === lastId) ? true : undefined), "the slow subscriber to catch up", 20_000);
        };
        // 1. Nobody reads while the replay is due and more rows land: the replay waits, live rows overflow its buffer.
        for (let i = 0; i < 12; i++) await register();
        await dispatcher.settle();
        // 2. Reading slowly while two writers go on.
        paused = false;
        await Promise.all(
          [0, 1].map(async () => {
            for (let i = 0; i < 8; i++) await register();
          }),
        );
        await caughtUp();
        // 3. Live, then the reader stalls: the queue fills and the stream falls back to the database.
        paused = true;
        for (let i = 0; i < 10; i++) await register();
        await dispatcher.settle();
        paused = false;
        await caughtUp();
        const expected = (await history(server, org.officers[0]!.token, String(cursor))).map((n) => Number(n.id));
        expect(received.map((n) => n.position)).toEqual(expected);
        await stream.return();
        await consume;
      } finally {
        unforward();
        await dispatcher.stop();
      }
    });

    it("should deliver rows committed while the replay's last page was in flight, once", async () => {
      // An injected fault: the first history read holds its answer until the test has committed and dispatched more rows.
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let queried: () => void = () => undefined;
      const firstQuery = new Promise<void>((resolve) => (queried = resolve));
      class GatedHistory extends NotificationStore {
        private calls = 0;
        override async visibleAfter(...args: Parameters<NotificationStore["visibleAfter"]>): Promise<Notification[]> {
          const rows = await super.visibleAfter(...args);
          if ((this.calls += 1) === 1) {
            queried();
            await gate;
          }
          return rows;
        }
      }
      const bus = new InProcessEventBus();
      const unforward = server.app.bus.subscribe("notifications.committed", (e) => void bus.publish("notifications.committed", e));
      const dispatcher = new NotificationDispatcher({
        store: new GatedHistory(server.app.db),
        policy: server.app.services.policy,
        refs: new NotificationRefs(server.app.db),
        bus,
        logger: server.app.logger,
      });
      await dispatcher.start();
      try {
        const viewer = await server.app.services.officers.authenticate(org.officers[0]!.token);
        const before = await history(server, org.officers[0]!.token, null);
        const cursor = Number(before.at(-2)!.id);
        const stream = dispatcher.open(viewer!, { after: cursor, types: null });
        await firstQuery; // its snapshot is taken: what commits now is only offered live
        const during = await register();
        await dispatcher.settle();
        release();
        const after = await register();
        const received: Notification[] = [];
        while (!received.some((n) => n.officerId === after.id)) {
          const next = await Promise.race([
            stream.next(),
            new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no notification within 5 s")), 5000)),
          ]);
          if (next.done) break;
          received.push(next.value);
        }
        const expected = (await history(server, org.officers[0]!.token, String(cursor))).map((n) => Number(n.id));
        expect(received.map((n) => n.position)).toEqual(expected);
        expect(received.map((n) => n.officerId)).toContain(during.id);
        await stream.return();
      } finally {
        unforward();
        await dispatcher.stop();
      }
    });
  });
}
