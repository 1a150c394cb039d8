import type { Clock } from "./clock.js";
import type { Database } from "./db/data-source.js";
import type { RuntimeHealth, WorkerState } from "./health.js";

/**
 * Prometheus text exposition (version 0.0.4) at GET /metrics: what an
 * operator of the KMS watches. Aggregates only: counts by status,
 * environment and route, never an organization, subject or token.
 */
export interface MetricsSources {
  db: Database;
  clock: Clock;
  /** Live notification subscriptions on this instance. */
  subscribers(): number;
  /** Redis, mutation queue and background loops of this instance. */
  runtime?(): RuntimeHealth;
}

const DAY_MS = 86_400_000;
/** Upper bounds of the request-duration histogram, seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** Paths as a small closed set of routes, so that ids never become label values. */
export function routeOf(path: string): string {
  for (const route of ["/graphql", "/graphiql", "/certificates", "/crl", "/kms", "/healthz", "/readyz", "/metrics"]) {
    if (path === route || path.startsWith(`${route}/`)) return route;
  }
  return "other";
}

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const labels = (pairs: Record<string, string>) =>
  `{${Object.entries(pairs)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
    .join(",")}}`;

export class Metrics {
  private readonly requests = new Map<string, Histogram>();

  constructor(private readonly sources: MetricsSources) {}

  recordHttpRequest(method: string, path: string, status: number, seconds: number): void {
    const key = JSON.stringify([method, routeOf(path), String(status)]);
    let h = this.requests.get(key);
    if (!h) {
      h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.requests.set(key, h);
    }
    h.count += 1;
    h.sum += seconds;
    BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) h!.counts[i]! += 1;
    });
  }

  async render(): Promise<string> {
    const out: string[] = [];
    const gauge = (name: string, help: string, rows: Array<[Record<string, string>, number]>) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const [l, v] of rows) out.push(`${name}${Object.keys(l).length ? labels(l) : ""} ${v}`);
    };
    // This instance's own state first: it renders while the database is away, which is when it matters.
    const runtime = this.sources.runtime?.();
    if (runtime) {
      gauge("keyportal_redis_connected", "1 while both Redis connections are up; 0 while events between instances fall back to polling. Absent without REDIS_URL.",
        runtime.redis === "not configured" ? [] : [[{}, runtime.redis === "connected" ? 1 : 0]]);
      gauge("keyportal_mutations_queued", "Mutations waiting for their turn on this instance.", [[{}, runtime.mutationsQueued]]);
      gauge("keyportal_mutation_queue_stuck", "1 while the running mutation has passed its deadline.", [[{}, runtime.mutationQueueStuck ? 1 : 0]]);
      const states: WorkerState[] = ["ok", "failing", "stalled"];
      gauge("keyportal_worker_state", "Background loops by state (1 for the current one): failing rounds retry; stalled ones passed their deadline.",
        Object.entries(runtime.workers).flatMap(([worker, current]) => states.map((state): [Record<string, string>, number] => [{ worker, state }, current === state ? 1 : 0])));
    }
    const { db, clock } = this.sources;
    const now = clock.now();
    const nowIso = now.toISOString();
    const count = async (sql: string, params: unknown[] = []) =>
      (await db.manager.query(sql, params)) as Array<Record<string, string | number>>;
    const p = (i: number) => (db.isPostgres ? `$${i}` : "?");

    let databaseUp = 1;
    const fromDatabase = out.length;
    try {
      const csrs = await count(`SELECT status, COUNT(*) AS n FROM certificate_signing_requests GROUP BY status`);
      gauge("keyportal_csrs", "Certificate signing requests by status (PENDING ones wait for a KMS operator).", csrs.map((r) => [{ status: String(r.status) }, Number(r.n)]));

      const certificates = await count(
        `SELECT environment,
                CASE WHEN "revokedAt" IS NOT NULL THEN 'REVOKED' WHEN "notAfter" <= ${p(1)} THEN 'EXPIRED' ELSE 'ACTIVE' END AS status,
                COUNT(*) AS n
           FROM certificates GROUP BY 1, 2`,
        [nowIso],
      );
      gauge("keyportal_certificates", "Participant certificates by environment and status.", certificates.map((r) => [{ environment: String(r.environment), status: String(r.status) }, Number(r.n)]));

      const expiring = await count(
        `SELECT COUNT(*) AS n FROM certificates WHERE "revokedAt" IS NULL AND "notAfter" > ${p(1)} AND "notAfter" <= ${p(2)}`,
        [nowIso, new Date(now.getTime() + 30 * DAY_MS).toISOString()],
      );
      gauge("keyportal_certificates_expiring_30d", "Active certificates whose notAfter is within 30 days.", [[{}, Number(expiring[0]?.n ?? 0)]]);

      const emails = await count(`SELECT status, COUNT(*) AS n FROM email_deliveries GROUP BY status`);
      gauge("keyportal_email_deliveries", "Notification emails by delivery status (FAILED ones gave up after their retries).", emails.map((r) => [{ status: String(r.status) }, Number(r.n)]));

      const audit = await count(`SELECT seq FROM audit_head WHERE id = 1`);
      gauge("keyportal_audit_events", "Events in the audit chain.", [[{}, Number(audit[0]?.seq ?? 0)]]);
    } catch {
      // The database is away: its aggregates are left out, this instance's own state is still reported.
      out.length = fromDatabase;
      databaseUp = 0;
    }
    gauge("keyportal_database_up", "1 when this instance's last /metrics queries reached the database.", [[{}, databaseUp]]);

    gauge("keyportal_notification_subscriptions", "Live notification subscriptions on this instance.", [[{}, this.sources.subscribers()]]);

    out.push("# HELP keyportal_http_request_duration_seconds HTTP requests by method, route and status.");
    out.push("# TYPE keyportal_http_request_duration_seconds histogram");
    for (const [key, h] of this.requests) {
      const [method, route, status] = JSON.parse(key) as [string, string, string];
      const base = { method, route, status };
      BUCKETS.forEach((bound, i) => out.push(`keyportal_http_request_duration_seconds_bucket${labels({ ...base, le: String(bound) })} ${h.counts[i]}`));
      out.push(`keyportal_http_request_duration_seconds_bucket${labels({ ...base, le: "+Inf" })} ${h.count}`);
      out.push(`keyportal_http_request_duration_seconds_sum${labels(base)} ${h.sum}`);
      out.push(`keyportal_http_request_duration_seconds_count${labels(base)} ${h.count}`);
    }

    const memory = process.memoryUsage();
    gauge("process_resident_memory_bytes", "Resident memory of this process.", [[{}, memory.rss]]);
    gauge("nodejs_heap_used_bytes", "V8 heap in use.", [[{}, memory.heapUsed]]);
    gauge("process_uptime_seconds", "Seconds since this process started.", [[{}, Math.round(process.uptime())]]);
    return `${out.join("\n")}\n`;
  }
}
