import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import WebSocket from "ws";
import type { TestServer } from "../support/server.js";

export interface ErrorJson {
  message: string;
  extensions?: { code?: string; reason?: string; retryAfterSeconds?: number };
}

export interface RawResponse {
  status: number;
  retryAfter: string | null;
  text: string;
  json: { data?: unknown; errors?: ErrorJson[] };
}

/** POST /graphql with a raw body (so tests can send what a careless client would). */
export async function postRaw(server: TestServer, body: string, token?: string | null): Promise<RawResponse> {
  const res = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), text, json: JSON.parse(text) as RawResponse["json"] };
}

export const post = (server: TestServer, query: string, variables?: unknown, token?: string | null) =>
  postRaw(server, JSON.stringify({ query, variables }), token);

/** A logger whose JSON lines the test can read. */
export function capturingLogger(): { logger: Logger; lines: () => Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  return { logger: pino({ level: "info" }, sink), lines: () => raw.map((l) => JSON.parse(l) as { level: number; msg: string }) };
}

export interface RawSocket {
  ws: WebSocket;
  /** Resolves with the first message of that type (or rejects on close). */
  next(type: string, id?: string): Promise<{ type: string; id?: string; payload?: unknown }>;
  send(message: unknown): void;
  closed: Promise<{ code: number; reason: string }>;
}

/** A graphql-transport-ws socket driven message by message; connection_init is sent with the token. */
export async function rawSocket(server: TestServer, token: string, opts: { ca?: string } = {}): Promise<RawSocket> {
  const ws = new WebSocket(server.wsUrl, "graphql-transport-ws", opts.ca ? { ca: opts.ca } : {});
  const inbox: Array<{ type: string; id?: string; payload?: unknown }> = [];
  const waiters: Array<() => void> = [];
  ws.on("message", (data) => {
    inbox.push(JSON.parse(data.toString()) as { type: string });
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const w of waiters.splice(0)) w();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
  const next = async (type: string, id?: string) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const index = inbox.findIndex((m) => m.type === type && (id === undefined || m.id === id));
      if (index >= 0) return inbox.splice(index, 1)[0]!;
      if (ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed before a ${type} message`);
      if (Date.now() > deadline) throw new Error(`no ${type} message within 10 s; have ${JSON.stringify(inbox).slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  return { ws, next, send: (message) => ws.send(JSON.stringify(message)), closed };
}
