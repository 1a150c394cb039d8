import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InProcessEventBus } from "../../src/kernel/events.js";
import { NotificationDispatcher } from "../../src/notifications/dispatcher.js";
import { NotificationStore } from "../../src/notifications/notification.store.js";
import { NotificationRefs } from "../../src/notifications/refs.js";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { collect, eventually, latestId } from "./helpers.js";

describe("a subscriber who loses access", () => {
  let server: TestServer;
  let org: TestOrganization;
  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { officerCount: 2 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should stop receiving at once when the officer is deactivated", async () => {
    const leaving = await addOfficer(server, org.id, `leaving-${Date.now()}@bank.example`);
    let closeCode = 0;
    const after = await latestId(server);
    const leavingSub = collect(server.wsClient(leaving.token, { onClose: (code) => (closeCode = code) }), { after });
    const stayingSub = collect(server.wsClient(org.officers[0]!.token), { after });
    // Both are live: they hear of an event before the deactivation.
    const before = await addOfficer(server, org.id, `before-${Date.now()}@bank.example`);
    await leavingSub.waitFor((n) => n.officer?.id === before.id, "the leaving officer's subscription to be live");

    await server.ok(`mutation($id: ID!) { deactivateOfficer(officerId: $id) { id } }`, { id: leaving.id }, org.officers[1]!.token);
    await leavingSub.waitForEnd();
    expect(closeCode).toBe(4403);
    const later = await addOfficer(server, org.id, `later-${Date.now()}@bank.example`);
    await stayingSub.waitFor((n) => n.officer?.id === later.id, "the staying officer to hear of the next event");
    expect(stayingSub.items.map((n) => n.type)).toContain("OFFICER_DEACTIVATED");
    // Not even the notice of its own deactivation, nor anything after it.
    expect(leavingSub.items.map((n) => n.type)).not.toContain("OFFICER_DEACTIVATED");
    expect(leavingSub.items.some((n) => n.officer?.id === later.id)).toBe(false);
    stayingSub.stop();
  });

  it("should stop receiving at once when the token is revoked", async () => {
    const officer = org.officers[0]!;
    const { createApiToken } = await server.ok<{ createApiToken: { id: string; token: string } }>(
      `mutation($id: ID!) { createApiToken(officerId: $id, label: "dashboard") { id token } }`,
      { id: officer.id },
      officer.token,
    );
    const sub = collect(server.wsClient(createApiToken.token), { after: await latestId(server) });
    const before = await addOfficer(server, org.id, `before-revoke-${Date.now()}@bank.example`);
    await sub.waitFor((n) => n.officer?.id === before.id, "the subscription to be live");
    await server.ok(`mutation($id: ID!) { revokeApiToken(tokenId: $id) }`, { id: createApiToken.id }, officer.token);
    await sub.waitForEnd();
    const later = await addOfficer(server, org.id, `after-revoke-${Date.now()}@bank.example`);
    await server.app.services.dispatcher.settle();
    expect(sub.items.some((n) => n.officer?.id === later.id)).toBe(false);
  });

  it("should end a revoked viewer's stream before the next delivery even if the revocation signal never arrives", async () => {
    // A dispatcher that hears of commits but, as if the signal were lost, never of access.revoked.
    const bus = new InProcessEventBus();
    const unforward = server.app.bus.subscribe("notifications.committed", (e) => void bus.publish("notifications.committed", e));
    const dispatcher = new NotificationDispatcher({
      store: new NotificationStore(server.app.db),
      policy: server.app.services.policy,
      refs: new NotificationRefs(server.app.db),
      bus,
      logger: server.app.logger,
    });
    await dispatcher.start();
    try {
      const officer = org.officers[1]!;
      const { createApiToken } = await server.ok<{ createApiToken: { id: string; token: string } }>(
        `mutation($id: ID!) { createApiToken(officerId: $id, label: "watcher") { id token } }`,
        { id: officer.id },
        officer.token,
      );
      const viewer = (await server.app.services.officers.authenticate(createApiToken.token))!;
      const stream = dispatcher.open(viewer, { after: null, types: null });
      const first = addOfficer(server, org.id, `seen-${Date.now()}@bank.example`);
      expect((await stream.next()).value?.officerId).toBe((await first).id);

      await server.ok(`mutation($id: ID!) { revokeApiToken(tokenId: $id) }`, { id: createApiToken.id }, officer.token);
      await addOfficer(server, org.id, `unseen-${Date.now()}@bank.example`);
      const next = await Promise.race([stream.next(), new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 5000))]);
      expect(next).toEqual({ value: undefined, done: true });
      await eventually(() => (dispatcher.subscriberCount === 0 ? true : undefined), "the stream to be detached");
    } finally {
      unforward();
      await dispatcher.stop();
    }
  });
});
