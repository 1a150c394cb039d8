/**
 * The baseline for subscription fan-out: a bare graphql-ws server (ws +
 * graphql-ws + the same in-process PubSub KeyPortal uses) that broadcasts
 * `{ notifications { id } }` to every subscriber on POST /publish. Nothing
 * else: no authentication, no visibility, no database. Started by the
 * fan-out bench as a child process: node dist/bench/bare-server.js <port>
 */
import http from "node:http";
import { createPubSub } from "@graphql-yoga/subscription";
import { buildSchema } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";

const port = Number(process.argv[2] ?? "4151");
const schema = buildSchema(`
  type Notification { id: ID! }
  type Query { ok: Boolean }
  type Subscription { notifications: Notification! }
`);
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
server.listen({ port, host: "127.0.0.1", backlog: 4096 });
process.on("SIGTERM", () => {
  wss.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
