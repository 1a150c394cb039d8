/**
 * Subscription fan-out: N graphql-ws subscribers on one server process (the
 * compiled server, started here as a child, as in production), one mutation,
 * time from the mutation's start to each subscriber's receipt. The clients
 * live in this process and the server in its own, as stack.md advises for
 * file descriptors. Baseline in the same run: the same mutation's own HTTP
 * round trip with no subscriber.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface FanoutResult {
  subscribers: number;
  mutationMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  serverRssMb: number;
}

export async function waitReady(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error("the server exited while starting");
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the server did not become ready in 30 s");
}

export function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

export async function fanoutBench(subscriberCounts: number[], port = 4873): Promise<{ baselineMs: number; results: FanoutResult[] }> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-fanout-"));
  const token = `kp_bench_${randomBytes(24).toString("base64url")}`;
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [path.join(ROOT, "dist", "src", "main.js")], {
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", KEYPORTAL_DATA_DIR: dataDir, KEYPORTAL_BOOTSTRAP_TOKEN: token, LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const clients: Client[] = [];
  try {
    await waitReady(url, child);
    const gql = async (query: string, variables: Record<string, unknown> = {}) => {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as { data?: Record<string, { id: string }>; errors?: unknown[] };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data!;
    };
    const org = (await gql(`mutation { createOrganization(input: { name: "Fanout Bank", kind: PARTICIPANT, contactEmail: "pki@fanout.example", country: "GB" }) { id } }`)).createOrganization!;
    let officerNo = 0;
    const registerOfficer = () =>
      gql(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, {
        input: { organizationId: org.id, name: `Officer ${officerNo}`, email: `officer${officerNo++}@fanout.example` },
      });

    // Baseline: the mutation alone, nobody listening.
    const baselineSamples: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await registerOfficer();
      baselineSamples.push(performance.now() - t);
    }
    baselineSamples.sort((a, b) => a - b);
    const baselineMs = baselineSamples[10]!;

    const results: FanoutResult[] = [];
    // Shared by every client, including those created for earlier (smaller) counts.
    let onEvent: (client: number, at: number) => void = () => undefined;
    for (const count of subscriberCounts) {
      // Add subscribers up to `count`.
      while (clients.length < count) {
        const index = clients.length;
        const client = createClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, connectionParams: { authorization: `Bearer ${token}` } });
        clients.push(client);
        client.subscribe(
          { query: `subscription { notifications(types: [OFFICER_REGISTERED]) { id } }` },
          { next: () => onEvent(index, performance.now()), error: () => undefined, complete: () => undefined },
        );
      }
      // Warm-up: mutate until every subscriber has heard an event, so all subscriptions are registered (bounded).
      const warmed = new Set<number>();
      onEvent = (client) => warmed.add(client);
      for (let i = 0; i < 50 && warmed.size < clients.length; i++) {
        await registerOfficer();
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 500));
      const arrivals: number[] = [];
      const all = new Promise<void>((resolve) => {
        onEvent = (_client, at) => {
          arrivals.push(at);
          if (arrivals.length === clients.length) resolve();
        };
      });
      const start = performance.now();
      await registerOfficer();
      const mutationMs = performance.now() - start;
      await Promise.race([all, new Promise((r) => setTimeout(r, 60_000))]);
      const latencies = arrivals.map((a) => a - start).sort((a, b) => a - b);
      const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
      results.push({ subscribers: latencies.length, mutationMs, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1), serverRssMb: rssMb(child.pid!) });
      onEvent = () => undefined;
    }
    return { baselineMs, results };
  } finally {
    await Promise.all(clients.map(async (c) => c.dispose()));
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}
