import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";

describe("lifecycles", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it("the app starts once: a second start is refused and saying so names its state", async () => {
    await expect(server.app.start()).rejects.toThrow("KeyPortal cannot start: it is running");
  });

  it("the dispatcher opens streams only while running, and does not start again once stopped", async () => {
    const dispatcher = server.app.services.dispatcher;
    const viewer = await server.app.services.officers.authenticate(server.operatorToken);
    expect(viewer).not.toBeNull();
    const stream = dispatcher.open(viewer!, { types: null, after: null });
    stream.end();
    await dispatcher.stop();
    await dispatcher.start();
    expect(() => dispatcher.open(viewer!, { types: null, after: null })).toThrow("the notification dispatcher is not running");
  });
});
