/**
 * The compiled server (`node dist/src/main.js`) for tests that need a real
 * process: exit codes, signals, stderr. Builds dist/ when it is missing or
 * older than any source file; tsc may report errors from work in progress
 * elsewhere in the tree, but it still emits, so what counts is the output.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const MAIN_JS = path.join(ROOT, "dist", "src", "main.js");
const LOCK = path.join(ROOT, "dist", ".test-build-lock");

function newestSourceMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMtime(full));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

function isFresh(): boolean {
  return existsSync(MAIN_JS) && statSync(MAIN_JS).mtimeMs >= newestSourceMtime(path.join(ROOT, "src"));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Builds dist/ unless it is up to date; one build at a time across test workers (a lock directory). */
export async function ensureCompiled(): Promise<void> {
  if (isFresh()) return;
  mkdirSync(path.dirname(LOCK), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      // Another worker is building; a lock older than 3 minutes is a leftover of a killed run.
      if (existsSync(LOCK) && Date.now() - statSync(LOCK).mtimeMs > 180_000) rmdirSync(LOCK);
      if (Date.now() > deadline) throw new Error("timed out waiting for another test worker to build dist/");
      await sleep(250);
    }
  }
  try {
    if (isFresh()) return;
    await promisify(execFile)(path.join(ROOT, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json"], {
      cwd: ROOT,
      maxBuffer: 16 * 1024 * 1024,
    }).catch(() => undefined); // errors elsewhere in the tree still emit
  } finally {
    rmdirSync(LOCK);
  }
  if (!existsSync(MAIN_JS)) throw new Error(`tsc did not emit ${MAIN_JS}`);
}

export interface ServerProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node dist/src/main.js` with exactly the given environment (plus PATH). */
export function spawnServer(env: Record<string, string>): ServerProcess {
  const child = spawn(process.execPath, [MAIN_JS], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Waits until the server logs the URL it listens on (pino JSON line "KeyPortal is listening"). */
export async function listeningUrl(proc: ServerProcess, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const line of proc.stdout().split("\n")) {
      if (!line.startsWith("{")) continue;
      const entry = JSON.parse(line) as { msg?: string; url?: string };
      if (entry.msg === "KeyPortal is listening" && entry.url) return entry.url;
    }
    if (proc.child.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`server did not start listening\nstdout:\n${proc.stdout()}\nstderr:\n${proc.stderr()}`);
}
