/**
 * Test helpers for the PKI suite: temp dirs, the real openssl binary, keys and
 * CSRs made the way a participant would make them.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
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

/** Runs openssl synchronously with a bounded time; throws OpensslError with its stderr on failure. */
export function openssl(args: string[], options: { input?: string | Buffer; cwd?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync("openssl", args, {
      input: options.input,
      cwd: options.cwd,
      timeout: options.timeoutMs ?? 30_000,
      stdio: ["pipe", "pipe", "pipe"],
      encoding: "latin1",
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; status?: number | null; message: string };
    throw new OpensslError(`openssl ${args.join(" ")} failed: ${err.stderr ?? err.message}`, err.stdout ?? "", err.stderr ?? "", err.status ?? null);
  }
}

/** Like openssl() but returns status and both streams instead of throwing. */
export function opensslResult(args: string[], options: { input?: string | Buffer; cwd?: string } = {}) {
  try {
    const stdout = openssl(args, options);
    return { ok: true, status: 0, stdout, stderr: "" };
  } catch (e) {
    if (e instanceof OpensslError) return { ok: false, status: e.status, stdout: e.stdout, stderr: e.stderr };
    throw e;
  }
}

export function opensslAsync(args: string[], timeoutMs = 30_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile("openssl", args, { timeout: timeoutMs, encoding: "latin1" }, (error, stdout, stderr) => {
      if (error) reject(new OpensslError(`openssl ${args.join(" ")} failed: ${stderr}`, stdout, stderr, null));
      else resolve({ stdout, stderr });
    });
  });
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

/** Resolves once something accepts connections on the port, or rejects after timeoutMs. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host: "127.0.0.1" });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** Starts a long-running openssl process (s_server); the caller kills it. */
export function spawnOpenssl(args: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn("openssl", args, { stdio: ["pipe", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString("latin1")));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString("latin1")));
  return { child, output: () => output };
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
    child.stdin.end("Q\n");
  });
}
