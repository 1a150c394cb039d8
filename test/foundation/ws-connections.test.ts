import http from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, eventually } from "../notifications/helpers.js";
import { startTestServer, type TestServer } from "../support/server.js";

// A full collection on demand, to see what an open connection still references.
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

describe("an open WebSocket connection", () => {
  let server: TestServer;
  const upgrades: Array<WeakRef<http.IncomingMessage>> = [];
  const emit = http.Server.prototype.emit;

  beforeAll(async () => {
    // Every upgrade request the server receives, seen without being kept.
    http.Server.prototype.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]) {
      if (event === "upgrade") upgrades.push(new WeakRef(args[0] as http.IncomingMessage));
      return emit.call(this, event, ...args);
    } as typeof emit;
    server = await startTestServer();
  });
  afterAll(async () => {
    http.Server.prototype.emit = emit;
    await server?.close();
  });

  it("should not keep its upgrade request once connected, and still deliver", async () => {
    const client = server.wsClient(server.operatorToken);
    const feed = collect(client, { types: ["OFFICER_REGISTERED"] });
    await new Promise<void>((resolve) => client.on("connected", () => resolve()));
    expect(upgrades).toHaveLength(1);
    const { createOrganization: org } = await server.ok<{ createOrganization: { id: string } }>(
      `mutation { createOrganization(input: { name: "Retention Bank", kind: PARTICIPANT, contactEmail: "pki@retention.example", country: "GB" }) { id } }`,
    );
    // The subscription is live once an event reaches it.
    await eventually(async () => {
      await server.ok(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, {
        input: { organizationId: org.id, name: "Officer", email: `officer-${feed.items.length}-${Date.now()}@retention.example` },
      });
      return feed.items.length > 0 ? true : undefined;
    }, "the subscription to receive an event");
    collectGarbage();
    expect(upgrades[0]!.deref()).toBeUndefined();
    const before = feed.items.length;
    await server.ok(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, {
      input: { organizationId: org.id, name: "Officer", email: "officer-after@retention.example" },
    });
    await feed.waitFor(() => feed.items.length > before, "an event after the collection");
    expect(feed.errors).toEqual([]);
  });
});
