/**
 * The baseline for subscription fan-out: a bare graphql-ws server (ws +
 * graphql-ws + the same in-process PubSub KeyPortal uses) that broadcasts
 * `{ notifications { id } }` to every subscriber on POST /publish. Nothing
 * else: no authentication, no visibility, no database. Started by the
 * fan-out bench as a child process: node dist/bench/bare-server.js <port>
 */
import { realpathSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createPubSub } from "@graphql-yoga/subscription";
import { buildSchema } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";

export interface BareServer {
  port: number;
  close(): Promise<void>;
}

export async function startBareServer(port: number, host = "127.0.0.1"): Promise<BareServer> {
  const schema = buildSchema(`
    type Notification { id: ID! }
    type Query { ok: Boolean }
    type Subscription { notifications: Notification! }
  `);
  // The event is the field's value, as KeyPortal's resolver returns the notification it is given.
  schema.getSubscriptionType()!.getFields().notifications!.resolve = (notification: { id: string }) => notification;
  const pubsub = createPubSub<{ notification: [{ id: string }] }>();
  let published = 0;

  const server = http.createServer((req, res) => {
    if (req.method === "POST" && req.url === "/publish") {
      pubsub.publish("notification", { id: String(++published) });
      res.writeHead(200, { "content-type": "application/json" }).end(`{"published":${published}}`);
      return;
    }
    if (req.url === "/readyz") {
      res.writeHead(200).end("ready");
      return;
    }
    res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ server, path: "/graphql" });
  useServer({ schema, roots: { subscription: { notifications: () => pubsub.subscribe("notification") } } }, wss);
  // A deep accept queue, as for a busy production server (Node's default is 511).
  await new Promise<void>((resolve) => server.listen({ port, host, backlog: 4096 }, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// Run as a script (the bench's child process), not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const bare = await startBareServer(Number(process.argv[2] ?? "4151"));
  process.on("SIGTERM", () => {
    setTimeout(() => process.exit(0), 2000).unref();
    void bare.close().then(() => process.exit(0));
  });
}
