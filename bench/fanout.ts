/**
 * Subscription fan-out: N graphql-ws subscribers, one event, time from the
 * publishing request's start to each subscriber's receipt. Two servers, each
 * in a child process of its own, the clients in this one (stack.md: file
 * descriptors), one after the other with the same client count and payload
 * (`{ notifications { id } }`):
 * - KeyPortal (the compiled server): the event is a registerOfficer mutation
 *   (transaction, audit, outbox, visibility per subscriber);
 * - a bare graphql-ws server (bare-server.ts): POST /publish, no work.
 * Baseline in the same run for KeyPortal: the mutation's own round trip
 * with nobody subscribed.
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
import { percentile } from "./measure.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface FanoutResult {
  server: string;
  /** Subscribers that received the measured event (as data). */
  subscribers: number;
  /** Events answered with errors instead of data, over the whole run (warm-up included): not counted as received. */
  errored: number;
  /** Clients asked for; of them, connections refused or failed before the handshake, and those dropped (reset, closed) after it. */
  requested: number;
  failed: number;
  dropped: number;
  publishMs: number;
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

/**
 * CPU time (user + system) a process has used so far, in ms, from
 * /proc/<pid>/stat (clock ticks of 10 ms); null where there is no /proc.
 */
export function cpuMs(pid: number): number | null {
  try {
    // The command name (field 2) may hold spaces: the fields counted from after its closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return null;
  }
}

interface Target {
  name: string;
  port: number;
  child: ChildProcess;
  subscription: string;
  connectionParams?: Record<string, string>;
  publish(): Promise<unknown>;
}

/** At most this many WebSocket handshakes at a time: a burst above the listen backlog is answered with resets. */
const HANDSHAKES_IN_FLIGHT = 200;

/**
 * Subscribes up to each count in turn, publishes once per count, and reports
 * receipt latencies; bounded at 60 s a count. A connection refused, reset or
 * closed by the server is counted (failed before its handshake, dropped
 * after it) and the run goes on with the others: under load a server that
 * sheds connections is a result, not a crash of the bench.
 */
async function fanoutTo(target: Target, subscriberCounts: number[]): Promise<FanoutResult[]> {
  const clients: Client[] = [];
  const results: FanoutResult[] = [];
  const state: Array<"connecting" | "open" | "failed" | "dropped"> = [];
  let disposing = false;
  let errored = 0;
  // Shared by every client, including those created for earlier (smaller) counts.
  let onEvent: (client: number, at: number) => void = () => undefined;
  const count = (s: "failed" | "dropped") => state.filter((x) => x === s).length;
  try {
    for (const wanted of subscriberCounts) {
      const pending = new Set<Promise<void>>();
      while (clients.length < wanted) {
        const index = clients.length;
        state.push("connecting");
        let settle: () => void = () => undefined;
        const handshake = new Promise<void>((resolve) => (settle = resolve));
        const lost = () => {
          if (disposing || (state[index] !== "open" && state[index] !== "connecting")) return;
          state[index] = state[index] === "open" ? "dropped" : "failed";
          settle();
        };
        const client = createClient({
          url: `ws://127.0.0.1:${target.port}/graphql`,
          webSocketImpl: WebSocket,
          lazy: false,
          retryAttempts: 0,
          ...(target.connectionParams ? { connectionParams: target.connectionParams } : {}),
          on: {
            connected: () => {
              state[index] = "open";
              settle();
            },
            closed: lost,
            error: lost,
          },
          // Counted above; nothing to print per connection.
          onNonLazyError: () => undefined,
        });
        clients.push(client);
        client.subscribe(
          { query: target.subscription },
          {
            next: (result) => {
              if (result.errors || !result.data) errored += 1;
              else onEvent(index, performance.now());
            },
            error: () => undefined,
            complete: () => undefined,
          },
        );
        const tracked = Promise.race([handshake, new Promise<void>((r) => setTimeout(r, 30_000))]).then(() => void pending.delete(tracked));
        pending.add(tracked);
        if (pending.size >= HANDSHAKES_IN_FLIGHT) await Promise.race(pending);
      }
      await Promise.all(pending);
      const live = () => state.filter((x) => x === "open").length;
      // Warm-up: publish until every live subscriber has heard an event, so all subscriptions are registered (bounded).
      const warmed = new Set<number>();
      onEvent = (client) => warmed.add(client);
      for (let i = 0; i < 60 && warmed.size < live(); i++) {
        await target.publish().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 500));
      }
      await new Promise((r) => setTimeout(r, 1000));
      const expected = live();
      const arrivals: number[] = [];
      const all = new Promise<void>((resolve) => {
        onEvent = (_client, at) => {
          arrivals.push(at);
          if (arrivals.length >= expected) resolve();
        };
      });
      const start = performance.now();
      let publishMs: number;
      try {
        await target.publish();
        publishMs = performance.now() - start;
      } catch {
        publishMs = Number.NaN;
      }
      await Promise.race([all, new Promise((r) => setTimeout(r, 60_000))]);
      const latencies = arrivals.map((a) => a - start).sort((a, b) => a - b);
      const at = (q: number) => percentile(latencies, q);
      results.push({
        server: target.name,
        subscribers: latencies.length,
        errored,
        requested: wanted,
        failed: count("failed"),
        dropped: count("dropped"),
        publishMs,
        p50Ms: at(0.5),
        p99Ms: at(0.99),
        maxMs: at(1),
        serverRssMb: rssMb(target.child.pid!),
      });
      onEvent = () => undefined;
    }
    return results;
  } finally {
    disposing = true;
    await Promise.all(clients.map(async (c) => c.dispose()));
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
}

export async function fanoutBench(
  subscriberCounts: number[],
  port = Number(process.env.BENCH_PORT ?? "4873"),
): Promise<{ baselineMs: number; results: FanoutResult[] }> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-fanout-"));
  const token = `kp_bench_${randomBytes(24).toString("base64url")}`;
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [path.join(ROOT, "dist", "src", "main.js")], {
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      KEYPORTAL_DATA_DIR: dataDir,
      KEYPORTAL_BOOTSTRAP_TOKEN: token,
      LOG_LEVEL: "warn",
      // Every subscriber uses the one bench token: the per-token quotas would refuse all but the first 20 connections.
      KEYPORTAL_TOKEN_RATE: "1000000",
      KEYPORTAL_TOKEN_BURST: "1000000",
      KEYPORTAL_MAX_SOCKETS_PER_TOKEN: "1000000",
      KEYPORTAL_MAX_SUBSCRIPTION_UNITS_PER_TOKEN: "1000000",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const results: FanoutResult[] = [];
  let baselineMs: number;
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
    const baselineSamples: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await registerOfficer();
      baselineSamples.push(performance.now() - t);
    }
    baselineSamples.sort((a, b) => a - b);
    baselineMs = baselineSamples[10]!;
    results.push(
      ...(await fanoutTo(
        { name: "KeyPortal", port, child, subscription: `subscription { notifications(types: [OFFICER_REGISTERED]) { id } }`, connectionParams: { authorization: `Bearer ${token}` }, publish: registerOfficer },
        subscriberCounts,
      )),
    );
  } finally {
    await stop(child);
    rmSync(dataDir, { recursive: true, force: true });
  }

  const barePort = port + 1;
  const bare = spawn(process.execPath, [path.join(ROOT, "dist", "bench", "bare-server.js"), String(barePort)], { stdio: ["ignore", "ignore", "inherit"] });
  try {
    await waitReady(`http://127.0.0.1:${barePort}`, bare);
    results.push(
      ...(await fanoutTo(
        { name: "bare graphql-ws", port: barePort, child: bare, subscription: `subscription { notifications { id } }`, publish: () => fetch(`http://127.0.0.1:${barePort}/publish`, { method: "POST" }).then((r) => r.text()) },
        subscriberCounts,
      )),
    );
  } finally {
    await stop(bare);
  }
  return { baselineMs, results };
}
