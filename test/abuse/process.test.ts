/**
 * Findings 7 and 8 on the compiled server process: start-up failures are one
 * line and exit 1; SIGTERM after mail went out over SMTP, or with idle
 * keep-alive HTTP clients, exits 0 within two seconds.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureCompiled, listeningUrl, spawnServer, type ServerProcess } from "../foundation/helpers/compiled.js";
import { startSmtpSink, type SmtpSink } from "../notifications/helpers.js";

const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms))]);

describe("start-up failures and shutdown of the compiled server", () => {
  const dirs: string[] = [];
  const procs: ServerProcess[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "keyportal-abuse-proc-"));
    dirs.push(dir);
    return dir;
  };
  const start = (env: Record<string, string>) => {
    const proc = spawnServer({ HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info", KEYPORTAL_DATA_DIR: tempDir(), ...env });
    procs.push(proc);
    return proc;
  };

  beforeAll(async () => {
    await ensureCompiled();
  }, 240_000);
  afterAll(() => {
    for (const proc of procs) if (proc.child.exitCode === null) proc.child.kill("SIGKILL");
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const expectOneLineFailure = (proc: ServerProcess, pattern: RegExp) => {
    const lines = proc.stderr().split("\n").filter((l) => l.length > 0);
    expect(lines, proc.stderr()).toHaveLength(1);
    expect(lines[0]).toMatch(/^keyportal: failed to start: /);
    expect(lines[0]).toMatch(pattern);
    expect(proc.stderr()).not.toMatch(/\n\s+at |WebSocketServer|node:events/);
  };

  it("should exit 1 with one line when the port is busy", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const proc = start({ PORT: String(port) });
      const { code } = await within(proc.exited, 30_000, "exiting on a busy port");
      expect(code).toBe(1);
      expectOneLineFailure(proc, /EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  it("should exit 1 with one line when HOST does not resolve", async () => {
    const proc = start({ HOST: "no-such-host.invalid" });
    const { code } = await within(proc.exited, 30_000, "exiting on an unresolvable HOST");
    expect(code).toBe(1);
    expectOneLineFailure(proc, /ENOTFOUND|EAI_AGAIN/);
  });

  it("should exit 1 with one line when a TLS file is missing", async () => {
    const proc = start({ KEYPORTAL_TLS_CERT: "/nonexistent/cert.pem", KEYPORTAL_TLS_KEY: "/nonexistent/key.pem" });
    const { code } = await within(proc.exited, 30_000, "exiting on a missing TLS file");
    expect(code).toBe(1);
    expectOneLineFailure(proc, /ENOENT|cert\.pem/);
  });

  describe("with mail over SMTP", () => {
    let smtp: SmtpSink;
    beforeAll(async () => {
      smtp = await startSmtpSink();
    });
    afterAll(async () => {
      await smtp?.close();
    });

    it("should exit 0 within 2 s of SIGTERM after sending mail over SMTP, with an idle keep-alive client connected", async () => {
      const token = `kp_${randomBytes(24).toString("base64url")}`;
      const proc = start({ KEYPORTAL_BOOTSTRAP_TOKEN: token, SMTP_URL: `smtp://127.0.0.1:${smtp.port}` });
      const url = await listeningUrl(proc);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const gql = (query: string, variables?: unknown) =>
        new Promise<{ data?: Record<string, { id: string }> }>((resolve, reject) => {
          const body = JSON.stringify({ query, variables });
          const req = http.request(`${url}/graphql`, {
            method: "POST",
            agent,
            headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "content-length": Buffer.byteLength(body) },
          });
          req.on("response", (res) => {
            let text = "";
            res.setEncoding("utf8").on("data", (c: string) => (text += c));
            res.on("end", () => resolve(JSON.parse(text)));
          });
          req.on("error", reject);
          req.end(body);
        });
      const org = await gql(
        `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }`,
        { input: { name: "Mail Bank", kind: "PARTICIPANT", contactEmail: "pki@mail.example", country: "GB" } },
      );
      await gql(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, {
        input: { organizationId: org.data!.createOrganization!.id, name: "Ada", email: "ada@mail.example" },
      });
      const deadline = Date.now() + 20_000;
      while (smtp.messages.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(smtp.messages.length).toBeGreaterThan(0);
      // The agent keeps its socket open and idle; the SMTP pool keeps its connection.
      const started = performance.now();
      proc.child.kill("SIGTERM");
      const exit = await within(proc.exited, 10_000, "exiting after SIGTERM");
      const took = performance.now() - started;
      agent.destroy();
      expect(exit).toEqual({ code: 0, signal: null });
      expect(took).toBeLessThan(2_000);
      expect(proc.stdout()).not.toMatch(/"level":50/);
    });
  });
});
