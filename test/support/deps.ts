/**
 * External dependencies of tests (PostgreSQL, Redis, openssl, chromium,
 * SoftHSM2). A test that needs one runs when it is there; otherwise it skips
 * with one line saying what is missing. With KEYPORTAL_TEST_REQUIRE=all (CI)
 * a missing dependency fails the test run instead.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";

export type Dependency = "postgres" | "redis" | "openssl" | "chromium" | "softhsm2";

const required = new Set(
  (process.env.KEYPORTAL_TEST_REQUIRE ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
);

function isRequired(dep: Dependency): boolean {
  return required.has("all") || required.has(dep);
}

function tcpOpen(port: number, host = "127.0.0.1", timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

function commandWorks(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore", timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

export const SOFTHSM2_LIBRARY_CANDIDATES = [
  "/usr/lib/softhsm/libsofthsm2.so",
  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
];

export function softhsm2Library(): string | undefined {
  return SOFTHSM2_LIBRARY_CANDIDATES.find((p) => existsSync(p));
}

export const CHROMIUM_PATH = process.env.KEYPORTAL_CHROMIUM ?? "/usr/bin/chromium";

const probes: Record<Dependency, () => Promise<boolean> | boolean> = {
  postgres: () => tcpOpen(5432),
  redis: () => tcpOpen(6379),
  openssl: () => commandWorks("openssl", ["version"]),
  chromium: () => existsSync(CHROMIUM_PATH),
  softhsm2: () => Boolean(softhsm2Library()) && commandWorks("softhsm2-util", ["--version"]),
};

const cache = new Map<Dependency, Promise<boolean>>();

/**
 * Resolves true when every dependency is there. When one is missing: under
 * KEYPORTAL_TEST_REQUIRE it throws; otherwise it prints one line and resolves
 * false, and the caller skips (`describe.skipIf(!(await available(...)))`).
 */
export async function available(...deps: Dependency[]): Promise<boolean> {
  const missing: Dependency[] = [];
  for (const dep of deps) {
    if (!cache.has(dep)) cache.set(dep, Promise.resolve(probes[dep]()));
    if (!(await cache.get(dep))) missing.push(dep);
  }
  if (missing.length === 0) return true;
  const hard = missing.filter(isRequired);
  if (hard.length > 0) {
    throw new Error(`required test dependency missing: ${hard.join(", ")} (KEYPORTAL_TEST_REQUIRE=${[...required].join(",")})`);
  }
  console.warn(`skipping: ${missing.join(", ")} not available on this machine`);
  return false;
}
