/**
 * KeyPortal beside a peer, `cfssl serve` (Debian's golang-cfssl, a P-256 CA),
 * both driven by ONE load generator in its own process: wrk, with a Lua
 * script (bench/peers.lua) that walks request bodies from a file (one
 * pre-submitted CSR id per signCsr, one fresh CSR per submitCsr) or repeats
 * one. Ratios come from the same run:
 * - signCsr / cfssl sign, 16 in flight, SQLite;
 * - PostgreSQL through a TCP proxy here that adds 1 ms to every round trip
 *   (a database across a network): signCsr at 16 in flight / at 1, and
 *   2 instances / 1 instance (16 in flight through a connection balancer
 *   here, the same one for both);
 * - submitCsr / cfssl sign;
 * - `{ me { role } }` / `{ __typename }` on the same server;
 * with p50/p99 of each. Prints a table and a JSON line. Not a test.
 *
 * Run: `npm run build:server && node dist/bench/peers.js`, or
 * `BENCH_ONLY=peers npm run bench`. BENCH_PEERS_SECONDS (per cell, default
 * 10), BENCH_PEERS_CSRS (fresh CSRs for submitCsr and the ids signCsr walks,
 * per cell, default 1500; BENCH_PEERS_PG_CSRS for each PostgreSQL cell, default
 * the same), BENCH_PEERS_PORT (first of the ports used, default
 * 4900), BENCH_PEERS_DB (sqlite,postgres), BENCH_PEERS_PROFILE_DIR (CPU profiles
 * of the KeyPortal servers, summarized by `node dist/bench/cpu-profile.js <dir>`).
 */
import "reflect-metadata";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes, webcrypto } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import * as x509 from "@peculiar/x509";
import { waitReady } from "./fanout.js";
import { enrollmentCodeFromMail } from "./workflow.js";

const crypto = webcrypto as unknown as Crypto;
/** node-postgres (a dependency of TypeORM's driver here), for creating and dropping the bench's schema. */
const pg = createRequire(import.meta.url)("pg") as {
  Client: new (options: { connectionString: string }) => { connect(): Promise<void>; query(sql: string): Promise<unknown>; end(): Promise<void> };
};
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const LUA = path.join(ROOT, "bench", "peers.lua");
const PG_URL = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";

export interface PeerCell {
  name: string;
  inFlight: number;
  /** Answers that succeeded, per second. */
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  /** The bodies ran out before the cell's time: the rate is a lower bound. */
  exhausted: boolean;
}

export interface PeersRun {
  cells: PeerCell[];
  ratios: Array<{ name: string; value: number; target?: string }>;
}

const QUOTAS_OFF = {
  KEYPORTAL_TOKEN_RATE: "1000000",
  KEYPORTAL_TOKEN_BURST: "1000000",
  KEYPORTAL_ADDRESS_RATE: "1000000",
  KEYPORTAL_ADDRESS_BURST: "1000000",
};

function ensureCfssl(): void {
  if (spawnSync("cfssl", ["version"], { stdio: "ignore" }).status === 0) return;
  if (process.getuid?.() !== 0) throw new Error("cfssl is missing: apt-get install -y golang-cfssl (as root)");
  console.log("installing golang-cfssl (apt-get install -y golang-cfssl)");
  execFileSync("apt-get", ["install", "-y", "golang-cfssl"], { stdio: "inherit" });
}

function ensureWrk(): void {
  if (spawnSync("wrk", ["-v"], { stdio: "ignore" }).error) throw new Error("wrk is missing: apt-get install -y wrk");
}

/** A P-256 CA made with openssl, served by `cfssl serve` with its default signing policy. */
async function startCfssl(dir: string, port: number): Promise<ChildProcess> {
  const key = path.join(dir, "ca-key.pem");
  const cert = path.join(dir, "ca.pem");
  execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
  execFileSync("openssl", ["req", "-new", "-x509", "-key", key, "-out", cert, "-days", "3650", "-subj", "/C=GB/O=Bench Peer CA/CN=Bench Peer CA", "-sha256"]);
  const child = spawn("cfssl", ["serve", "-address", "127.0.0.1", "-port", String(port), "-ca", cert, "-ca-key", key, "-loglevel", "5"], { stdio: ["ignore", "ignore", "ignore"] });
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error("cfssl serve exited while starting");
    try {
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/cfssl/info`, { method: "POST", body: "{}" });
      if (res.ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("cfssl serve did not answer in 10 s");
}

/** Forwards to PostgreSQL, holding every chunk 1 ms in the direction client to server: 1 ms more per round trip. */
function startDelayProxy(port: number, target: number, delayMs = 1): Promise<net.Server> {
  const server = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1");
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on("data", (chunk) => void setTimeout(() => upstream.write(chunk), delayMs));
    upstream.on("data", (chunk) => client.write(chunk));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  return new Promise((resolve) => server.listen({ port, host: "127.0.0.1", backlog: 1024 }, () => resolve(server)));
}

/** Connection-level round robin over instances, so one wrk drives one or several with the same path. */
function startBalancer(port: number): Promise<{ server: net.Server; targets: number[] }> {
  const state = { server: null as unknown as net.Server, targets: [] as number[] };
  let next = 0;
  state.server = net.createServer((client) => {
    const upstream = net.connect(state.targets[next++ % state.targets.length]!, "127.0.0.1");
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  return new Promise((resolve) => state.server.listen({ port, host: "127.0.0.1", backlog: 1024 }, () => resolve(state)));
}

interface Instance {
  url: string;
  child: ChildProcess;
}

function startKeyPortal(port: number, dataDir: string, operatorToken: string, env: Record<string, string>): Instance {
  // BENCH_PEERS_PROFILE_DIR: each KeyPortal writes a V8 CPU profile there when it stops (read with bench/cpu-profile.ts).
  const profileDir = process.env.BENCH_PEERS_PROFILE_DIR;
  const profile = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(profileDir)}`] : [];
  const child = spawn(process.execPath, [...profile, path.join(ROOT, "dist", "src", "main.js")], {
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      HOST: "127.0.0.1",
      KEYPORTAL_DATA_DIR: dataDir,
      KEYPORTAL_BOOTSTRAP_TOKEN: operatorToken,
      LOG_LEVEL: "warn",
      ...QUOTAS_OFF,
      ...env,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
}

async function post(url: string, token: string | null, query: string, variables?: unknown): Promise<Record<string, { id: string; token: string }>> {
  const res = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as { data?: Record<string, { id: string; token: string }>; errors?: unknown[] };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data!;
}

interface Organization {
  id: string;
  name: string;
  officerToken: string;
}

/** A participant with two officers enrolled by their mailed codes (an organization is ready for key exchange at two). */
async function participant(url: string, dataDir: string, operator: string): Promise<Organization> {
  const name = `Peers Bank ${randomBytes(3).toString("hex")}`;
  const org = (await post(url, operator, `mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }`, {
    i: { name, kind: "PARTICIPANT", contactEmail: "pki@peers.example", country: "GB" },
  })).createOrganization!;
  const tokens: string[] = [];
  for (let i = 0; i < 2; i++) {
    const email = `officer${i}-${org.id.slice(0, 8)}@peers.example`;
    await post(url, operator, `mutation($i: RegisterOfficerInput!) { registerOfficer(input: $i) { id } }`, { i: { organizationId: org.id, name: `Officer ${i}`, email } });
    const code = await enrollmentCodeFromMail(path.join(dataDir, "mail"), email);
    tokens.push((await post(url, null, `mutation($c: String!) { enrollOfficer(code: $c, label: "bench") { token } }`, { c: code })).enrollOfficer!.token);
  }
  return { id: org.id, name, officerToken: tokens[0]! };
}

async function csrPems(org: string, count: number): Promise<string[]> {
  const pems: string[] = [];
  for (let i = 0; i < count; i++) {
    const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: [{ C: ["GB"] }, { O: [org] }, { CN: [`peer-${i}-${randomBytes(4).toString("hex")}`] }], keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } },
      crypto,
    );
    pems.push(csr.toString("pem"));
  }
  return pems;
}

const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`;
const SIGN = `mutation($input: SignCsrInput!) { signCsr(input: $input) { id } }`;
const submitBody = (org: Organization, pem: string) => JSON.stringify({ query: SUBMIT, variables: { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } } });
const signBody = (csrId: string) => JSON.stringify({ query: SIGN, variables: { input: { csrId, validityDays: 365 } } });

/** Every PENDING CSR's id, page by page. */
async function pendingIds(url: string, operator: string): Promise<string[]> {
  const ids: string[] = [];
  let after: string | null = null;
  for (;;) {
    const page = (await post(url, operator, `query($after: String) { certificateSigningRequests(first: 100, after: $after, filter: { status: PENDING }) { nodes { id } pageInfo { endCursor hasNextPage } } }`, {
      after,
    })) as unknown as { certificateSigningRequests: { nodes: Array<{ id: string }>; pageInfo: { endCursor: string | null; hasNextPage: boolean } } };
    ids.push(...page.certificateSigningRequests.nodes.map((n) => n.id));
    if (!page.certificateSigningRequests.pageInfo.hasNextPage) return ids;
    after = page.certificateSigningRequests.pageInfo.endCursor;
  }
}

/** Submitted here, 16 at a time, so that signCsr has ids to walk. */
async function presubmit(url: string, org: Organization, count: number): Promise<string[]> {
  const pems = await csrPems(org.name, count);
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < pems.length) {
        const pem = pems[next++]!;
        ids.push((await post(url, org.officerToken, SUBMIT, { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } })).submitCsr!.id);
      }
    }),
  );
  return ids;
}

interface WrkCell {
  name: string;
  url: string;
  token?: string;
  bodies: string[];
  /** Repeat the bodies (a cheap query) instead of ending when they run out. */
  cycle?: boolean;
  inFlight: number;
  seconds: number;
  /** An answer fails when it contains this (GraphQL: "errors"), or lacks okIf (cfssl: "success":true). */
  failIf?: string;
  okIf?: string;
}

async function runWrk(dir: string, cell: WrkCell): Promise<PeerCell> {
  const bodiesFile = path.join(dir, `bodies-${randomBytes(4).toString("hex")}.txt`);
  // JSON bodies: newlines inside them are escaped, so one a line.
  writeFileSync(bodiesFile, cell.bodies.join("\n") + "\n");
  // Asynchronous: the database proxy and the balancer run in this process's event loop while wrk runs.
  const child = spawn("wrk", ["-t1", `-c${cell.inFlight}`, `-d${cell.seconds}s`, "--timeout", "30s", "-s", LUA, cell.url], {
    env: {
      PATH: process.env.PATH,
      PEERS_BODIES: bodiesFile,
      PEERS_AUTH: cell.token ? `Bearer ${cell.token}` : "",
      PEERS_CYCLE: cell.cycle ? "1" : "0",
      PEERS_FAIL_IF: cell.failIf ?? "",
      PEERS_OK_IF: cell.okIf ?? "",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const result = { stdout: "", stderr: "" };
  child.stdout.on("data", (chunk: Buffer) => (result.stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (result.stderr += chunk.toString()));
  await new Promise((resolve) => child.once("close", resolve));
  rmSync(bodiesFile, { force: true });
  const line = /^PEERS (\{.*\})$/m.exec(result.stdout ?? "")?.[1];
  if (!line) throw new Error(`wrk gave no result for ${cell.name}: ${result.stderr || result.stdout}`);
  if (process.env.BENCH_PEERS_VERBOSE) console.log(result.stdout, result.stderr);
  const r = JSON.parse(line) as { requests: number; durationUs: number; errors: number; exhausted: boolean; p50us: number; p99us: number; socketErrors: number };
  const errors = r.errors + r.socketErrors;
  return {
    name: cell.name,
    inFlight: cell.inFlight,
    perSecond: (r.requests - r.errors) / (r.durationUs / 1e6),
    p50Ms: r.p50us / 1000,
    p99Ms: r.p99us / 1000,
    requests: r.requests,
    errors,
    exhausted: r.exhausted,
  };
}

export async function peersBench(): Promise<PeersRun> {
  ensureCfssl();
  ensureWrk();
  const seconds = Number(process.env.BENCH_PEERS_SECONDS ?? "10");
  const csrs = Number(process.env.BENCH_PEERS_CSRS ?? "1500");
  const pgCsrs = Number(process.env.BENCH_PEERS_PG_CSRS ?? String(csrs));
  const base = Number(process.env.BENCH_PEERS_PORT ?? "4900");
  const dbs = (process.env.BENCH_PEERS_DB ?? "sqlite,postgres").split(",");
  const dir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-peers-"));
  const cells: PeerCell[] = [];
  const log = (c: PeerCell) => {
    cells.push(c);
    console.log(`  ${c.name}: ${c.perSecond.toFixed(0)}/s, p50 ${c.p50Ms.toFixed(1)} ms, p99 ${c.p99Ms.toFixed(1)} ms${c.errors ? `, ${c.errors} errors` : ""}${c.exhausted ? " (ran out of ids: a lower bound)" : ""}`);
  };
  const children: ChildProcess[] = [];
  const servers: net.Server[] = [];
  let schema: string | null = null;
  try {
    const cfssl = await startCfssl(dir, base);
    children.push(cfssl);
    const [samplePem] = await csrPems("Peers Sample", 1);
    const cfsslSign: WrkCell = {
      name: "cfssl sign",
      url: `http://127.0.0.1:${base}/api/v1/cfssl/sign`,
      bodies: [JSON.stringify({ certificate_request: samplePem })],
      cycle: true,
      inFlight: 16,
      seconds,
      okIf: '"success":true',
    };
    log(await runWrk(dir, cfsslSign));

    if (dbs.includes("sqlite")) {
      const dataDir = path.join(dir, "sqlite");
      const operator = `kp_bench_${randomBytes(24).toString("base64url")}`;
      const kp = startKeyPortal(base + 1, dataDir, operator, {});
      children.push(kp.child);
      await waitReady(kp.url, kp.child);
      const org = await participant(kp.url, dataDir, operator);
      const gqlUrl = `${kp.url}/graphql`;
      // The reads first: after the mutations the delivery worker is still sending their emails on the same cores.
      log(await runWrk(dir, { name: "SQLite: { me { role } }", url: gqlUrl, token: org.officerToken, bodies: [JSON.stringify({ query: "{ me { role } }" })], cycle: true, inFlight: 16, seconds, failIf: '"errors"' }));
      log(await runWrk(dir, { name: "SQLite: { __typename }", url: gqlUrl, bodies: [JSON.stringify({ query: "{ __typename }" })], cycle: true, inFlight: 16, seconds, failIf: '"errors"' }));
      const submit = await runWrk(dir, { name: "SQLite: submitCsr", url: gqlUrl, token: org.officerToken, bodies: (await csrPems(org.name, csrs)).map((p) => submitBody(org, p)), inFlight: 16, seconds, failIf: '"errors"' });
      log(submit);
      let ids = await pendingIds(kp.url, operator);
      if (ids.length < csrs) ids = [...ids, ...(await presubmit(kp.url, org, csrs - ids.length))];
      log(await runWrk(dir, { name: "SQLite: signCsr", url: gqlUrl, token: operator, bodies: ids.map(signBody), inFlight: 16, seconds, failIf: '"errors"' }));
      await stop(kp.child);
    }

    if (dbs.includes("postgres")) {
      schema = `kp_peers_${randomBytes(5).toString("hex")}`;
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${schema}`);
      await admin.end();
      const proxyPort = base + 2;
      servers.push(await startDelayProxy(proxyPort, Number(new URL(PG_URL).port || 5432)));
      const pgUrl = new URL(PG_URL);
      pgUrl.port = String(proxyPort);
      pgUrl.searchParams.set("schema", schema);
      const dataDir = path.join(dir, "postgres");
      const operator = `kp_bench_${randomBytes(24).toString("base64url")}`;
      const env = { DATABASE_URL: pgUrl.toString(), REDIS_URL, KEYPORTAL_REDIS_PREFIX: `kp-peers-${randomBytes(4).toString("hex")}` };
      const one = startKeyPortal(base + 3, dataDir, operator, env);
      children.push(one.child);
      await waitReady(one.url, one.child);
      const two = startKeyPortal(base + 4, dataDir, operator, env);
      children.push(two.child);
      await waitReady(two.url, two.child);
      const balancer = await startBalancer(base + 5);
      servers.push(balancer.server);
      const through = `http://127.0.0.1:${base + 5}/graphql`;
      const org = await participant(one.url, dataDir, operator);
      const signCell = async (name: string, inFlight: number, instances: number[]) => {
        balancer.targets = instances;
        const ids = await presubmit(one.url, org, pgCsrs);
        log(await runWrk(dir, { name, url: through, token: operator, bodies: ids.map(signBody), inFlight, seconds, failIf: '"errors"' }));
      };
      await signCell("PostgreSQL +1 ms: signCsr, 1 in flight, 1 instance", 1, [base + 3]);
      await signCell("PostgreSQL +1 ms: signCsr, 16 in flight, 1 instance", 16, [base + 3]);
      await signCell("PostgreSQL +1 ms: signCsr, 16 in flight, 2 instances", 16, [base + 3, base + 4]);
      await stop(two.child);
      await stop(one.child);
    }
  } finally {
    for (const child of children.reverse()) await stop(child);
    for (const server of servers) server.close();
    if (schema) {
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
    rmSync(dir, { recursive: true, force: true });
  }

  const rate = (name: string) => cells.find((c) => c.name === name)?.perSecond ?? Number.NaN;
  const ratios = [
    { name: "signCsr / cfssl sign (16 in flight, SQLite)", value: rate("SQLite: signCsr") / rate("cfssl sign"), target: ">= 0.25" },
    { name: "submitCsr / cfssl sign (16 in flight, SQLite)", value: rate("SQLite: submitCsr") / rate("cfssl sign") },
    { name: "{ me { role } } / { __typename } (SQLite)", value: rate("SQLite: { me { role } }") / rate("SQLite: { __typename }"), target: ">= 0.7" },
    {
      name: "PostgreSQL +1 ms: signCsr 16 in flight / 1 in flight",
      value: rate("PostgreSQL +1 ms: signCsr, 16 in flight, 1 instance") / rate("PostgreSQL +1 ms: signCsr, 1 in flight, 1 instance"),
      target: ">= 8",
    },
    {
      name: "PostgreSQL +1 ms: signCsr 2 instances / 1 instance (16 in flight)",
      value: rate("PostgreSQL +1 ms: signCsr, 16 in flight, 2 instances") / rate("PostgreSQL +1 ms: signCsr, 16 in flight, 1 instance"),
      target: ">= 1",
    },
  ];
  return { cells, ratios };
}

export function reportPeers(run: PeersRun): void {
  console.log("\n## KeyPortal beside cfssl serve (one wrk, same run)");
  console.log("| operation | in flight | rate | p50 | p99 | errors |");
  console.log("|---|---|---|---|---|---|");
  for (const c of run.cells) {
    console.log(`| ${c.name} | ${c.inFlight} | ${c.exhausted ? ">= " : ""}${c.perSecond.toFixed(0)}/s | ${c.p50Ms.toFixed(1)} ms | ${c.p99Ms.toFixed(1)} ms | ${c.errors} |`);
  }
  console.log("\n| ratio | value | target |");
  console.log("|---|---|---|");
  for (const r of run.ratios) console.log(`| ${r.name} | ${r.value.toFixed(2)}x | ${r.target ?? ""} |`);
  console.log(JSON.stringify({ bench: "peers", cells: run.cells, ratios: run.ratios }));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  reportPeers(await peersBench());
  process.exit(0);
}

