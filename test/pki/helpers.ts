/**
 * Test helpers for the PKI suite: temp dirs, the real openssl binary, keys and
 * CSRs made the way a participant would make them.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";

export function makeTempDir(prefix = "kp-pki-"): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

export class OpensslError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

/** Runs openssl synchronously with a bounded time; returns status and both streams. */
export function opensslResult(args: string[], options: { input?: string | Buffer; cwd?: string; timeoutMs?: number } = {}) {
  const result = spawnSync("openssl", args, {
    input: options.input,
    cwd: options.cwd,
    timeout: options.timeoutMs ?? 30_000,
    encoding: "latin1",
  });
  if (result.error) throw result.error;
  return { ok: result.status === 0, status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs openssl and returns its stdout; throws OpensslError (with stderr) when it fails. */
export function openssl(args: string[], options: { input?: string | Buffer; cwd?: string; timeoutMs?: number } = {}): string {
  const result = opensslResult(args, options);
  if (!result.ok) throw new OpensslError(`openssl ${args.join(" ")} failed: ${result.stderr}`, result.stdout, result.stderr, result.status);
  return result.stdout;
}

export type TestKey = "rsa2048" | "rsa3072" | "rsa1024" | "rsa2048e3" | "rsa2560" | "p256" | "p384" | "p521" | "ed25519";

/** Generates a private key file with openssl and returns its path. */
export function generateKey(dir: string, kind: TestKey): string {
  const path = join(dir, `${kind}-${Math.random().toString(36).slice(2)}.key`);
  const args: Record<TestKey, string[]> = {
    rsa2048: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    rsa3072: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
    rsa1024: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    rsa2048e3: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-pkeyopt", "rsa_keygen_pubexp:3"],
    rsa2560: ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2560"],
    p256: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    p384: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    p521: ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    ed25519: ["-algorithm", "ED25519"],
  };
  openssl(["genpkey", ...args[kind], "-out", path]);
  chmodSync(path, 0o600);
  return path;
}

/** A CSR made by `openssl req`; `digest` null means no digest option (required for Ed25519). */
export function makeCsr(keyPath: string, subject: string, digest: string | null = "-sha256", extra: string[] = []): string {
  const args = ["req", "-new", "-key", keyPath, "-subj", subject, ...extra];
  if (digest) args.push(digest);
  return openssl(args);
}

export const pemBody = (pem: string): Buffer => Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");

export function toPem(der: Uint8Array | Buffer, label: string): string {
  const b64 = Buffer.from(der).toString("base64").match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export function writeFile(dir: string, name: string, data: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

export const readText = (path: string) => readFileSync(path, "utf8");

/** A free TCP port on 127.0.0.1 (bound and released; the race window is acceptable in tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Starts a long-running openssl process (s_server); the caller kills it. */
export function spawnOpenssl(args: string[]): { child: ChildProcess; output: () => string; waitFor: (text: string, timeoutMs?: number) => Promise<void> } {
  const child = spawn("openssl", args, { stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    output += d.toString("latin1");
    for (const l of listeners) l();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const waitFor = (text: string, timeoutMs = 10_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (output.includes(text)) {
          done();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`openssl did not print ${JSON.stringify(text)} within ${timeoutMs} ms; output: ${output}`));
      }, timeoutMs);
      const onExit = () => {
        done();
        reject(new Error(`openssl exited before printing ${JSON.stringify(text)}; output: ${output}`));
      };
      const done = () => {
        clearTimeout(timer);
        listeners.delete(check);
        child.off("exit", onExit);
      };
      listeners.add(check);
      child.once("exit", onExit);
      check();
    });
  return { child, output: () => output, waitFor };
}

/** Runs `openssl s_client` to completion (stdin closed after a line) and returns what it printed and its status. */
export function sClient(args: string[], timeoutMs = 15_000): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn("openssl", ["s_client", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString("latin1")));
    child.stderr.on("data", (d: Buffer) => (output += d.toString("latin1")));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
    // s_client may exit (a refused handshake) before it reads stdin: the write then fails with EPIPE, which is not an error here.
    child.stdin.on("error", () => undefined);
    child.stdin.end("Q\n");
  });
}
