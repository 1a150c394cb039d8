import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import WebSocket from "ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureCompiled, listeningUrl, spawnServer } from "./helpers/compiled.js";

const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms))]);

describe("the compiled server process", () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keyportal-proc-"));
    dirs.push(dir);
    return dir;
  };

  beforeAll(async () => {
    await ensureCompiled();
  }, 240_000);

  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ["PORT", "abc"],
    ["LOG_LEVEL", "loud"],
    ["DATABASE_URL", "mysql://db.example/kp"],
    ["KEYPORTAL_BOOTSTRAP_TOKEN", "too-short"],
  ])("should exit with code 1 and one stderr line naming %s when it is %j", async (variable, value) => {
    const proc = spawnServer({ KEYPORTAL_DATA_DIR: tempDir(), [variable]: value });
    const { code } = await within(proc.exited, 20_000, "exiting on a bad configuration");
    expect(code).toBe(1);
    const lines = proc.stderr().split("\n").filter((l) => l.length > 0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(variable);
    expect(lines[0]).toMatch(/^keyportal: invalid configuration: /);
    expect(proc.stdout()).toBe("");
  });

  it("should drain an in-flight request, close WebSockets with 1001 and exit 0 on SIGTERM", async () => {
    const token = `kp_${randomBytes(24).toString("base64url")}`;
    const proc = spawnServer({
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "info",
      KEYPORTAL_DATA_DIR: tempDir(),
      KEYPORTAL_BOOTSTRAP_TOKEN: token,
    });
    try {
      const url = await listeningUrl(proc);
      const { port } = new URL(url);

      // A graphql-ws connection, acknowledged (the server authenticated it).
      const ws = new WebSocket(`${url.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws");
      const wsClosed = new Promise<{ code: number; reason: string }>((resolve) =>
        ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
      );
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })));
        ws.once("message", (data) => {
          const message = JSON.parse(data.toString()) as { type: string };
          if (message.type === "connection_ack") resolve();
          else reject(new Error(`expected connection_ack, got ${data.toString()}`));
        });
        ws.once("error", reject);
      });

      // A slow request: headers and half the body, then SIGTERM, then the rest. `Expect: 100-continue` makes the
      // server say when it has parsed the headers, so the request is surely in flight when the signal arrives.
      const body = JSON.stringify({ query: "{ me { role } }" });
      const half = Math.floor(body.length / 2);
      const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(
          {
            host: "127.0.0.1",
            port,
            path: "/graphql",
            method: "POST",
            headers: {
              "content-type": "application/json",
              "content-length": Buffer.byteLength(body),
              authorization: `Bearer ${token}`,
              expect: "100-continue",
            },
          },
          (res) => {
            let text = "";
            res.setEncoding("utf8").on("data", (c: string) => (text += c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on("error", reject);
        req.on("continue", () => {
          req.write(body.slice(0, half));
          proc.child.kill("SIGTERM");
          setTimeout(() => req.end(body.slice(half)), 500);
        });
        req.flushHeaders();
      });

      const answered = await within(response, 10_000, "the in-flight request");
      expect(answered.status).toBe(200);
      expect(JSON.parse(answered.body)).toEqual({ data: { me: { role: "KMS_OPERATOR" } } });

      const closed = await within(wsClosed, 10_000, "closing the WebSocket");
      expect(closed.code).toBe(1001);

      const exit = await within(proc.exited, 15_000, "exiting after SIGTERM");
      expect(exit).toEqual({ code: 0, signal: null });
      expect(proc.stdout()).toContain('"msg":"shutting down"');

      const refused = await new Promise<boolean>((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port: Number(port) });
        socket.once("connect", () => {
          socket.destroy();
          resolve(false);
        });
        socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
      });
      expect(refused).toBe(true);
    } finally {
      if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
    }
  });
  it("should write one readable line per event with LOG_FORMAT=pretty, and none with a secret", async () => {
    const token = `kp_${randomBytes(24).toString("base64url")}`;
    const proc = spawnServer({ HOST: "127.0.0.1", PORT: "0", LOG_FORMAT: "pretty", KEYPORTAL_DATA_DIR: tempDir(), KEYPORTAL_BOOTSTRAP_TOKEN: token });
    try {
      const deadline = Date.now() + 30_000;
      while (!proc.stdout().includes("KeyPortal is listening") && Date.now() < deadline && proc.child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const lines = proc.stdout().split("\n").filter(Boolean);
      const listening = lines.find((l) => l.includes("KeyPortal is listening"));
      expect(listening, proc.stdout() + proc.stderr()).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO {2}KeyPortal is listening {2}.*url=http:\/\/127\.0\.0\.1:\d+/);
      for (const line of lines) expect(line.startsWith("{"), line).toBe(false);
      expect(proc.stdout()).not.toContain(token);
    } finally {
      proc.child.kill("SIGTERM");
      await within(proc.exited, 15_000, "exiting after SIGTERM");
    }
  });
});
