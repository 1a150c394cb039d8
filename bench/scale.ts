/**
 * The read path at scale (BENCH_SCALE=1000000 npm run bench): a table of
 * that many certificates (and their CSRs) built with multi-row INSERTs in
 * transactions, then, over HTTP and one request at a time, every list page
 * and filter, a page deep into the keyset, totalCount with each filter, and
 * the expiry scan with nothing due and with 10k due (BENCH_DUE), all against
 * `{ me { role } }` in the same run; on SQLite and on PostgreSQL.
 *
 * The table: 100 participants; certificates created over three years,
 * valid 365 days (so about a third ACTIVE, the rest EXPIRED), 2% REVOKED,
 * 70% MTF; with a 125-day gap in creation so that no certificate is inside
 * the 120-day reminder horizon until the 10k due ones are added. Earlier
 * scans are taken as done (expired-through = now).
 *
 * The table is built, and the scans run, in this process through the app's
 * own services; the reads go over HTTP, one at a time, to the compiled
 * server started in a process of its own on the same database, so that the
 * client's work does not share the server's thread.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { DataSource, type EntityManager } from "typeorm";
import { createApp, type App } from "../src/app.js";
import { Certificate } from "../src/certificates/certificate.entity.js";
import { EmailDelivery, EmailDeliveryStatus } from "../src/notifications/email-delivery.entity.js";
import { recordCertificateChanges, recountTallies } from "../src/certificates/tallies.js";
import { loadConfig } from "../src/config.js";
import { CertificateKind, CertificateStatus, Environment } from "../src/kernel/domain.js";
import { encodeKeysetCursor } from "../src/graphql/pagination.js";
import { measure, percentile, type BenchResult } from "./measure.js";
import { enrollmentCodeFromMail } from "./workflow.js";
import { cpuMs, rssMb, waitReady } from "./fanout.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

const DAY_MS = 86_400_000;
/** The table is dated from the bench's start: the server in its own process reads it at the system clock. */
const NOW = new Date();
const ORGANIZATIONS = 100;
const KINDS = [CertificateKind.MTLS_CLIENT, CertificateKind.SIGNING, CertificateKind.ENCRYPTION];
const PG_URL = process.env.KEYPORTAL_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const NESTED = `totalCount pageInfo { endCursor hasNextPage }
  nodes { serialNumber status notAfter daysUntilExpiry organization { name keyExchangeReady } csr { status submittedBy { email } } renewedBy { id } }`;

async function onPostgres(sql: string): Promise<void> {
  const source = await new DataSource({ type: "postgres", url: PG_URL }).initialize();
  try {
    await source.query(sql);
  } finally {
    await source.destroy();
  }
}

export interface ScaleReport {
  db: string;
  certificates: number;
  buildSeconds: number;
  reads: BenchResult[];
  /** The scans (with the notifications each emitted) and the mail work after them. */
  scans: Array<{ name: string; ms: number; emitted?: number }>;
  /** The largest RSS the compiled server had when each of its runs ended. */
  serverRssMb: number;
}

/** Multi-row INSERTs of `rows` (each in `columns` order), so many per statement that each stays under the drivers' parameter limits. */
async function insertRows(em: EntityManager, table: string, columns: string[], rows: unknown[][]): Promise<void> {
  const postgres = em.connection.driver.options.type === "postgres";
  const perStatement = Math.floor(30_000 / columns.length);
  for (let start = 0; start < rows.length; start += perStatement) {
    const params: unknown[] = [];
    const values = rows.slice(start, start + perStatement).map((row) => `(${row.map((v) => (params.push(v), postgres ? `$${params.length}` : "?")).join(", ")})`);
    await em.query(`INSERT INTO "${table}" (${columns.map((c) => `"${c}"`).join(", ")}) VALUES ${values.join(", ")}`, params);
  }
}

const CSR_COLUMNS = ["id", "organizationId", "kind", "environment", "status", "subject", "commonName", "keyAlgorithm", "publicKeyFingerprint", "pem", "submittedById", "submittedAt", "decidedById", "decidedAt", "certificateId"];
const CERTIFICATE_COLUMNS = ["id", "organizationId", "kind", "environment", "serialNumber", "subject", "issuer", "commonName", "keyAlgorithm", "publicKeyFingerprint", "notBefore", "notAfter", "fingerprintSha256", "derBase64", "csrId", "revokedAt", "revocationReason", "createdAt", "lifecycle"];

interface Tenant {
  organizationId: string;
  officerId: string;
}

/** One certificate and its CSR, as rows in the column orders above. */
function rowsFor(i: number, tenant: Tenant, createdAt: Date, validityDays: number, revoked: boolean): { csr: unknown[]; certificate: unknown[]; lifecycle: CertificateStatus; c: Pick<Certificate, "organizationId" | "environment" | "kind" | "notAfter"> } {
  const id = `c${i.toString(16).padStart(31, "0")}`;
  const csrId = `r${i.toString(16).padStart(31, "0")}`;
  const fingerprint = i.toString(16).padStart(64, "0");
  const kind = KINDS[i % 3]!;
  const environment = i % 10 < 7 ? Environment.MTF : Environment.PRODUCTION;
  const notAfter = new Date(createdAt.getTime() + validityDays * DAY_MS);
  const lifecycle = revoked ? CertificateStatus.REVOKED : notAfter.getTime() <= NOW.getTime() ? CertificateStatus.EXPIRED : CertificateStatus.ACTIVE;
  const at = createdAt.toISOString();
  const subject = `CN=Scale ${i},O=Scale Bank,C=GB`;
  return {
    csr: [csrId, tenant.organizationId, kind, environment, "SIGNED", subject, `Scale ${i}`, "EC-P256", fingerprint, "-", tenant.officerId, at, tenant.officerId, at, id],
    certificate: [
      id, tenant.organizationId, kind, environment, fingerprint.slice(32), subject, "CN=KeyPortal MTF Issuing CA,O=KeyPortal", `Scale ${i}`, "EC-P256", fingerprint,
      at, notAfter.toISOString(), fingerprint, "", csrId, revoked ? new Date(createdAt.getTime() + 10 * DAY_MS).toISOString() : null, revoked ? "SUPERSEDED" : null, at, lifecycle,
    ],
    lifecycle,
    c: { organizationId: tenant.organizationId, environment, kind, notAfter },
  };
}

/**
 * The indexes of the tables a bulk load fills, dropped before it and made
 * again after (an index built once over sorted rows is far cheaper than one
 * kept up to date row by row): their definitions as the database reports them.
 */
async function withoutIndexes(app: App, tables: string[], load: () => Promise<void>): Promise<void> {
  const list = tables.map((t) => `'${t}'`).join(", ");
  const indexes = (await app.db.dataSource.query(
    app.db.isPostgres
      ? `SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN (${list})
           AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))`
      : `SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN (${list}) AND sql IS NOT NULL`,
  )) as Array<{ name: string; sql: string }>;
  for (const index of indexes) await app.db.dataSource.query(`DROP INDEX "${index.name}"`);
  await load();
  for (const index of indexes) await app.db.dataSource.query(index.sql);
}

async function buildTable(app: App, tenants: Tenant[], count: number): Promise<void> {
  await withoutIndexes(app, ["certificates", "certificate_signing_requests"], () => loadTable(app, tenants, count));
  await app.db.transaction(async ({ em }) => {
    await recountTallies(em);
    await em.query(`INSERT INTO app_state ("key", "value", "updatedAt") VALUES ('expiry-scan:expired-through', '${NOW.toISOString()}', '${NOW.toISOString()}')
       ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value"`);
  });
  if (app.db.isPostgres) await app.db.dataSource.query("ANALYZE");
}

async function loadTable(app: App, tenants: Tenant[], count: number): Promise<void> {
  const span = 3 * 365 * DAY_MS - 125 * DAY_MS;
  const start = NOW.getTime() - 3 * 365 * DAY_MS;
  const batch = 20_000;
  for (let from = 0; from < count; from += batch) {
    const csrs: unknown[][] = [];
    const certificates: unknown[][] = [];
    for (let i = from; i < Math.min(count, from + batch); i++) {
      let t = start + Math.floor((i / count) * span);
      // The gap: nothing expires within the 120-day reminder horizon.
      if (t >= NOW.getTime() - 365 * DAY_MS) t += 125 * DAY_MS;
      const rows = rowsFor(i, tenants[i % tenants.length]!, new Date(t), 365, i % 50 === 7);
      csrs.push(rows.csr);
      certificates.push(rows.certificate);
    }
    await app.db.transaction(async ({ em }) => {
      await insertRows(em, "certificate_signing_requests", CSR_COLUMNS, csrs);
      await insertRows(em, "certificates", CERTIFICATE_COLUMNS, certificates);
    });
  }
}

/** `due` more certificates, signed now and expiring 1 to 100 days later, inserted as issuance inserts them (tallies through recordCertificateChanges). */
async function addDue(app: App, tenants: Tenant[], first: number, due: number): Promise<void> {
  await app.db.transaction(async ({ em }) => {
    const csrs: unknown[][] = [];
    const certificates: unknown[][] = [];
    const changes: Parameters<typeof recordCertificateChanges>[1][number][] = [];
    for (let i = first; i < first + due; i++) {
      const validity = 1 + (i % 100);
      // Signed just now: a certificate dated before the last completed scan would be one no scan ever looks at again.
      const rows = rowsFor(i, tenants[i % tenants.length]!, new Date(Date.now() - 1000), validity, false);
      csrs.push(rows.csr);
      certificates.push(rows.certificate);
      changes.push({ certificate: rows.c, from: null, to: rows.lifecycle });
    }
    await insertRows(em, "certificate_signing_requests", CSR_COLUMNS, csrs);
    await insertRows(em, "certificates", CERTIFICATE_COLUMNS, certificates);
    await recordCertificateChanges(em, changes);
  });
}

type Post = (query: string, variables?: Record<string, unknown>, bearer?: string) => Promise<Record<string, unknown>>;

function poster(url: string, token: string): Post {
  return async (query, variables = {}, bearer = token) => {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data!;
  };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * The compiled server (dist/src/main.js) in a process of its own on the
 * bench's database, as deployed: the reads are measured from this process,
 * so the client's own work (fetch, JSON) does not share the server's thread.
 * BENCH_PROFILE_DIR makes it write a CPU profile there when it stops.
 */
async function startServer(env: Record<string, string>, name: string): Promise<{ url: string; child: ChildProcess; stop(): Promise<number> }> {
  const port = await freePort();
  const profileDir = process.env.BENCH_PROFILE_DIR;
  const child = spawn(process.execPath, [...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []), path.join(ROOT, "dist", "src", "main.js")], {
    env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, child);
  await settled(child.pid!);
  return {
    url,
    child,
    async stop() {
      const rss = rssMb(child.pid!);
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await new Promise((resolve) => child.once("exit", resolve));
      }
      return rss;
    },
  };
}

/**
 * Waits until the server has finished the work it starts with (the startup
 * expiry scan and sweep, the mail worker's first rounds): its CPU under 5%
 * over a second, or 60 s at most. Measured before that, the first rows
 * carry that work (at a million certificates, the first page measured some
 * 5 ms more server CPU than the same page later).
 */
async function settled(pid: number): Promise<void> {
  const deadline = performance.now() + 60_000;
  let last = cpuMs(pid);
  if (last === null) return;
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = cpuMs(pid);
    if (now === null || now - last < 50) return;
    last = now;
  }
}

/** Told as the run goes, so that a long run's figures are out before it ends. */
export interface ScaleProgress {
  built(certificates: number, seconds: number): void;
  read(result: BenchResult): void;
  scan(result: ScaleReport["scans"][number]): void;
}

/** How many due certificates the scan at 10k due adds by default: 1% of the table, from 100 up to 10,000. */
export function defaultDue(count: number): number {
  return Math.min(10_000, Math.max(100, Math.floor(count / 100)));
}

export async function scaleBench(db: "sqlite" | "postgres", count: number, runs: number, progress: ScaleProgress, due = defaultDue(count)): Promise<ScaleReport> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-scale-"));
  const token = `kp_bench_${randomBytes(24).toString("base64url")}`;
  let schema: string | null = null;
  if (db === "postgres") {
    schema = `kp_bench_${randomBytes(4).toString("hex")}`;
    await onPostgres(`CREATE SCHEMA ${schema}`);
  }
  const env: Record<string, string> = { KEYPORTAL_DATA_DIR: dataDir, KEYPORTAL_BOOTSTRAP_TOKEN: token, KEYPORTAL_EXPIRY_SCAN_INTERVAL: "24h",
    // One request at a time, as fast as the server answers: the per-token and per-address quotas would refuse a quiet machine's rate.
    KEYPORTAL_TOKEN_RATE: "1000000", KEYPORTAL_TOKEN_BURST: "1000000", KEYPORTAL_ADDRESS_RATE: "1000000", KEYPORTAL_ADDRESS_BURST: "1000000" };
  if (schema) env.DATABASE_URL = `${PG_URL}?schema=${schema}`;
  // The table is built and the scans run in this process (the app's own services, the system clock); the reads go
  // over HTTP to the compiled server in a process of its own, on the same database.
  const inProcess = () => createApp(loadConfig({ ...env, LOG_LEVEL: "silent", PORT: "0" }));
  let app: App | null = await inProcess();
  const children: Array<{ stop(): Promise<number> }> = [];
  try {
    const { url } = await app.start();
    const post = poster(url, token);
    // One organization through the API (its officer's token measures the officer's view); the others as rows.
    const org = (await post(`mutation { createOrganization(input: { name: "Scale Bank", kind: PARTICIPANT, contactEmail: "pki@scale.example", country: "GB" }) { id } }`)).createOrganization as { id: string };
    let officerToken = "";
    let officerId = "";
    for (const email of ["a@scale.example", "b@scale.example"]) {
      const officer = (await post(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, { input: { organizationId: org.id, name: email, email } })).registerOfficer as { id: string };
      officerId = officer.id;
      // The officer enrolls with the code mailed to them (the file sink under the data directory), without a token.
      const code = await enrollmentCodeFromMail(path.join(dataDir, "mail"), email);
      const enrolled = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: 'mutation($code: String!) { enrollOfficer(code: $code, label: "bench") { token } }', variables: { code } }),
      });
      officerToken = ((await enrolled.json()) as { data: { enrollOfficer: { token: string } } }).data.enrollOfficer.token;
    }
    const tenants: Tenant[] = [{ organizationId: org.id, officerId }];
    await app.db.transaction(async ({ em }) => {
      const orgs: unknown[][] = [];
      const officers: unknown[][] = [];
      for (let n = 1; n < ORGANIZATIONS; n++) {
        const t = { organizationId: randomUUID(), officerId: randomUUID() };
        tenants.push(t);
        orgs.push([t.organizationId, `Scale Bank ${n}`, "PARTICIPANT", `pki@scale${n}.example`, "GB", NOW.toISOString()]);
        officers.push([t.officerId, t.organizationId, "Officer", `officer@scale${n}.example`, "SECURITY_OFFICER", "ACTIVE", NOW.toISOString()]);
      }
      await insertRows(em, "organizations", ["id", "name", "kind", "contactEmail", "country", "createdAt"], orgs);
      await insertRows(em, "officers", ["id", "organizationId", "name", "email", "role", "status", "createdAt"], officers);
    });
    const built = performance.now();
    await buildTable(app, tenants, count);
    const buildSeconds = (performance.now() - built) / 1000;
    progress.built(count, buildSeconds);

    const deep = (await app.db.manager.query(
      `SELECT "createdAt", "id" FROM certificates ORDER BY "createdAt" DESC, "id" DESC LIMIT 1 OFFSET ${Math.floor(count * 0.9)}`,
    )) as Array<{ createdAt: string; id: string }>;
    const deepCursor = encodeKeysetCursor(deep[0]!.createdAt, deep[0]!.id);
    await app.stop();
    app = null;

    const page = (filter: string, after = "") => `{ certificates(first: 50${after ? `, after: "${after}"` : ""}${filter ? `, filter: { ${filter} }` : ""}) { ${NESTED} } }`;
    const countOnly = (filter: string) => `{ certificates(first: 1${filter ? `, filter: { ${filter} }` : ""}) { totalCount } }`;
    const FILTERS: Array<[string, string]> = [
      ["organizationId", `organizationId: "${org.id}"`],
      ["kind", "kind: SIGNING"],
      ["environment", "environment: MTF"],
      ["status ACTIVE", "status: ACTIVE"],
      ["status EXPIRED", "status: EXPIRED"],
      ["status REVOKED", "status: REVOKED"],
      ["expiringWithinDays: 365", "expiringWithinDays: 365"],
      ["environment + status ACTIVE", "environment: PRODUCTION, status: ACTIVE"],
    ];
    const reads: BenchResult[] = [];
    // BENCH_READS: only the reads whose names contain it (the baseline always runs).
    const only = process.env.BENCH_READS;
    const measuring = async (phase: string, body: (run: (name: string, query: string, bearer?: string) => Promise<void>) => Promise<void>) => {
      const server = await startServer(env, `server-${db}-${count}-${phase}`);
      children.push(server);
      const remote = poster(server.url, token);
      await body(async (name, query, bearer = token) => {
        if (only && reads.length > 0 && !name.includes(only)) return;
        const cpuBefore = cpuMs(server.child.pid!);
        const result = await measure(name, runs, () => remote(query, {}, bearer), 5);
        const cpuAfter = cpuMs(server.child.pid!);
        if (cpuBefore !== null && cpuAfter !== null) result.serverCpuMs = (cpuAfter - cpuBefore) / (runs + 5);
        reads.push(result);
        progress.read(result);
      });
      serverRssMb = Math.max(serverRssMb, await server.stop());
    };
    let serverRssMb = 0;
    await measuring("reads", async (run) => {
      await run("{ me { role } } (baseline)", `{ me { role } }`);
      await run("first page of 50, nested fields", page(""));
      await run(`page 50 at 90% depth of the keyset`, page("", deepCursor));
      for (const [name, filter] of FILTERS) await run(`first page, ${name}`, page(filter));
      await run("totalCount, no filter", countOnly(""));
      for (const [name, filter] of FILTERS) await run(`totalCount, ${name}`, countOnly(filter));
      await run("officer: first page of own organization, nested", page(""), officerToken);
      await run("officer: totalCount, status ACTIVE", countOnly("status: ACTIVE"), officerToken);
      await run("certificateSigningRequests: first page + totalCount", `{ certificateSigningRequests(first: 50) { totalCount nodes { id status submittedBy { email } } } }`);
      await run("certificateSigningRequests: status SIGNED + totalCount", `{ certificateSigningRequests(first: 50, filter: { status: SIGNED }) { totalCount nodes { id } } }`);
    });

    app = await inProcess();
    await app.start();
    const scans: ScaleReport["scans"] = [];
    const record = (entry: ScaleReport["scans"][number]) => {
      scans.push(entry);
      progress.scan(entry);
    };
    const timedScan = async () => {
      const t = performance.now();
      const emitted = await app!.services.expiryScanner.runOnce({ waitMs: 60_000 });
      return { ms: performance.now() - t, emitted };
    };
    const scan = async (name: string) => record({ name, ...(await timedScan()) });
    // The app's start runs a scan of its own: runOnce would wait for it and count that wait. One scan first,
    // unmeasured, to be past it; then the scan with nothing due as the schedule runs it, five times.
    await timedScan();
    const idle: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { ms, emitted } = await timedScan();
      if (emitted !== 0) throw new Error(`the scan with nothing due emitted ${emitted} notifications`);
      idle.push(ms);
    }
    idle.sort((a, b) => a - b);
    record({ name: `expiry scan, nothing due (median of 5; max ${percentile(idle, 1).toFixed(0)} ms)`, ms: percentile(idle, 0.5), emitted: 0 });
    await addDue(app, tenants, count, due);
    await scan(`expiry scan, ${due} due`);
    await scan(`expiry scan again: nothing new due, ${due} inside the horizon`);
    // The reminders' emails go out before the reads that follow: measured beside that work, those rows
    // measured the mail worker rather than the read path (up to ten minutes).
    const mailed = performance.now();
    const pending = () => app!.db.manager.count(EmailDelivery, { where: { status: EmailDeliveryStatus.PENDING } });
    const queued = await pending();
    let unsent = queued;
    while (unsent > 0 && performance.now() - mailed < 600_000) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      unsent = await pending();
    }
    record({ name: `the reminders' emails delivered (${queued - unsent} of ${queued} pending after the scans${unsent ? `; ${unsent} still pending` : ""})`, ms: performance.now() - mailed });
    await app.stop();
    app = null;

    await measuring("after-scans", async (run) => {
      await run("{ me { role } } (baseline, again)", `{ me { role } }`);
      await run("totalCount, expiringWithinDays: 30 (after the due ones)", countOnly("expiringWithinDays: 30"));
      await run("first page, expiringWithinDays: 30", page("expiringWithinDays: 30"));
      await run("notifications: first page (officer)", `{ notifications(first: 100) { nodes { id type } } }`, officerToken);
    });
    return { db, certificates: count + due, buildSeconds, reads, scans, serverRssMb };
  } finally {
    for (const child of children) await child.stop().catch(() => 0);
    await app?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (schema) {
      await onPostgres(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    }
  }
}
