import { createClient, type ExecutionResult } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BareServer, startBareServer } from "../../bench/bare-server.js";

describe("the fan-out benchmark's bare graphql-ws server", () => {
  let bare: BareServer;
  beforeAll(async () => {
    bare = await startBareServer(0);
  });
  afterAll(async () => {
    await bare?.close();
  });

  it("should deliver a published notification as data, as KeyPortal does, not as an error", async () => {
    const client = createClient({ url: `ws://127.0.0.1:${bare.port}/graphql`, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0 });
    try {
      const received = new Promise<ExecutionResult>((resolve, reject) => {
        client.subscribe({ query: "subscription { notifications { id } }" }, { next: resolve, error: reject, complete: () => undefined });
      });
      // The subscription is registered once the server has answered the handshake and read the subscribe message.
      await new Promise<void>((resolve) => client.on("connected", () => resolve()));
      let result: ExecutionResult | undefined;
      for (let i = 0; i < 50 && !result; i++) {
        await fetch(`http://127.0.0.1:${bare.port}/publish`, { method: "POST" }).then((r) => r.text());
        result = await Promise.race([received, new Promise<undefined>((r) => setTimeout(r, 100))]);
      }
      expect(result).toEqual({ data: { notifications: { id: expect.any(String) } } });
    } finally {
      await client.dispose();
    }
  });
});
