import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Clock } from "./kernel/clock.js";
import type { Database } from "./db/data-source.js";
import type { RuntimeHealth, WorkerState } from "./health.js";
import { ALL_ORGANIZATIONS } from "./certificates/tally.entity.js";
import { DAY_MS } from "./kernel/time.js";

/**
 * Prometheus text exposition at GET /metrics (prom-client): what an operator
 * of the KMS watches. Aggregates only: counts by status, environment and
 * route, never an organization, subject or token. prom-client adds the
 * process, event-loop-lag and GC metrics of this process.
 */
export interface MetricsSources {
  db: Database;
  clock: Clock;
  /** Live notification subscriptions on this instance. */
  subscribers(): number;
  /** Redis, mutation queue and background loops of this instance. */
  runtime?(): RuntimeHealth;
  /** Bearer tokens answered from this instance's cache, and read from the database; absent without a cache. */
  tokenCache?: { readonly hits: number; readonly misses: number; readonly size: number };
}

/** Upper bounds of the request-duration histogram, seconds. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Paths as a small closed set of routes, so that ids never become label values. */
export function routeOf(path: string): string {
  for (const route of ["/graphql", "/graphiql", "/certificates", "/crl", "/ca", "/kms", "/healthz", "/readyz", "/metrics"]) {
    if (path === route || path.startsWith(`${route}/`)) return route;
  }
  return "other";
}

type Row = Record<string, string | number>;

export class Metrics {
  /** One registry per app (tests run several in one process); add new metrics to it. */
  readonly registry = new Registry();
  private readonly requests: Histogram<"method" | "route" | "status">;

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Histogram({
      name: "keyportal_http_request_duration_seconds",
      help: "HTTP requests by method, route and status.",
      labelNames: ["method", "route", "status"],
      buckets: BUCKETS,
      registers,
    });
    const query = async (sql: string, params: unknown[] = []) => (await sources.db.manager.query(sql, params)) as Row[];
    const p = (i: number) => (sources.db.isPostgres ? `$${i}` : "?");
    /**
     * A gauge whose rows are read from the database at each scrape. While the
     * database is away it is left empty, so that this instance's own state
     * (below) still renders, which is when it matters.
     */
    const fromDatabase = <L extends string>(name: string, help: string, labelNames: L[], read: () => Promise<Array<[Partial<Record<L, string>>, number]>>) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          this.reset();
          let rows: Array<[Partial<Record<L, string>>, number]>;
          try {
            rows = await read();
          } catch {
            return;
          }
          for (const [labels, value] of rows) this.set(labels, value);
        },
      });
    new Gauge({
      name: "keyportal_database_up",
      help: "1 when this scrape's queries reached the database.",
      registers,
      async collect() {
        try {
          await query(`SELECT 1 AS up`);
          this.set(1);
        } catch {
          this.set(0);
        }
      },
    });
    const runtime = () => sources.runtime?.();
    new Gauge({
      name: "keyportal_redis_connected",
      help: "1 while both Redis connections are up; 0 while events between instances fall back to polling. Absent without REDIS_URL.",
      registers,
      collect() {
        this.reset();
        const redis = runtime()?.redis;
        if (redis && redis !== "not configured") this.set(redis === "connected" ? 1 : 0);
      },
    });
    new Gauge({
      name: "keyportal_mutations_queued",
      help: "Mutations waiting for a transaction slot or connection on this instance.",
      registers,
      collect() {
        this.set(runtime()?.mutationsQueued ?? 0);
      },
    });
    new Gauge({
      name: "keyportal_mutation_queue_stuck",
      help: "1 while a mutation transaction of this instance has run past its deadline.",
      registers,
      collect() {
        this.set(runtime()?.mutationQueueStuck ? 1 : 0);
      },
    });
    const WORKER_STATES: WorkerState[] = ["ok", "failing", "stalled"];
    new Gauge<"worker" | "state">({
      name: "keyportal_worker_state",
      help: "Background loops by state (1 for the current one): failing rounds retry; stalled ones passed their deadline.",
      labelNames: ["worker", "state"],
      registers,
      collect() {
        this.reset();
        for (const [worker, current] of Object.entries(runtime()?.workers ?? {})) {
          for (const state of WORKER_STATES) this.set({ worker, state }, current === state ? 1 : 0);
        }
      },
    });

    fromDatabase("keyportal_csrs", "Certificate signing requests by status (PENDING ones wait for a KMS operator).", ["status"], async () =>
      (await query(`SELECT status, COUNT(*) AS n FROM certificate_signing_requests GROUP BY status`)).map((r) => [{ status: String(r.status) }, Number(r.n)]),
    );
    /**
     * Certificates from the tallies (certificates/tallies.ts), exact and cheap
     * at any table size: status as of now, although the lifecycle sweep may
     * not yet have marked every certificate past notAfter. Whole past days of
     * ACTIVE tallies count as EXPIRED; today's and the boundary days of the
     * 30-day window are split by a range read of the (lifecycle, notAfter)
     * index, which holds one day of rows at most.
     */
    const dayOf = (t: Date) => t.toISOString().slice(0, 10);
    const activeBetween = async (from: string, fromInclusive: boolean, until: string, untilInclusive: boolean) =>
      (
        await query(
          `SELECT environment, COUNT(*) AS n FROM certificates
            WHERE lifecycle = 'ACTIVE' AND "notAfter" ${fromInclusive ? ">=" : ">"} ${p(1)} AND "notAfter" ${untilInclusive ? "<=" : "<"} ${p(2)}
            GROUP BY environment`,
          [from, until],
        )
      ).map((r) => [String(r.environment), Number(r.n)] as const);
    fromDatabase("keyportal_certificates", "Participant certificates by environment and status.", ["environment", "status"], async () => {
      const now = sources.clock.now();
      const today = dayOf(now);
      const counts = new Map<string, number>();
      const add = (environment: string, status: string, n: number) => counts.set(`${environment}\n${status}`, (counts.get(`${environment}\n${status}`) ?? 0) + n);
      const tallies = await query(
        `SELECT environment, CASE WHEN lifecycle = 'ACTIVE' AND "expiryDay" < ${p(1)} THEN 'EXPIRED' ELSE lifecycle END AS status, SUM(n) AS n
           FROM certificate_tallies WHERE "organizationId" = ${p(2)} GROUP BY 1, 2`,
        [today, ALL_ORGANIZATIONS],
      );
      for (const r of tallies) add(String(r.environment), String(r.status), Number(r.n));
      // Expired earlier today, still ACTIVE in the tallies until the sweep runs.
      for (const [environment, n] of await activeBetween(`${today}T00:00:00.000Z`, true, now.toISOString(), true)) {
        add(environment, "ACTIVE", -n);
        add(environment, "EXPIRED", n);
      }
      return [...counts].filter(([, n]) => n !== 0).map(([key, n]) => {
        const [environment, status] = key.split("\n") as [string, string];
        return [{ environment, status }, n];
      });
    });
    fromDatabase("keyportal_certificates_expiring_30d", "Active certificates whose notAfter is within 30 days.", [], async () => {
      const now = sources.clock.now();
      const until = new Date(now.getTime() + 30 * DAY_MS);
      const [first, last] = [dayOf(now), dayOf(until)];
      const whole = await query(
        `SELECT COALESCE(SUM(n), 0) AS n FROM certificate_tallies
          WHERE "organizationId" = ${p(1)} AND lifecycle = 'ACTIVE' AND "expiryDay" > ${p(2)} AND "expiryDay" < ${p(3)}`,
        [ALL_ORGANIZATIONS, first, last],
      );
      const sum = (rows: ReadonlyArray<readonly [string, number]>) => rows.reduce((total, [, n]) => total + n, 0);
      // The rest of today after now, and the last day up to the window's end, from the index (30 days apart: never the same day).
      const tomorrow = dayOf(new Date(Date.parse(`${first}T00:00:00.000Z`) + DAY_MS));
      const firstDay = sum(await activeBetween(now.toISOString(), false, `${tomorrow}T00:00:00.000Z`, false));
      const lastDay = sum(await activeBetween(`${last}T00:00:00.000Z`, true, until.toISOString(), true));
      return [[{}, Number(whole[0]?.n ?? 0) + firstDay + lastDay]];
    });
    fromDatabase("keyportal_email_deliveries", "Notification emails by delivery status (FAILED ones gave up after their retries).", ["status"], async () =>
      (await query(`SELECT status, COUNT(*) AS n FROM email_deliveries GROUP BY status`)).map((r) => [{ status: String(r.status) }, Number(r.n)]),
    );
    fromDatabase("keyportal_audit_events", "Events in the audit chain.", [], async () => [[{}, Number((await query(`SELECT seq FROM audit_head WHERE id = 1`))[0]?.seq ?? 0)]]);
    const tokenCache = sources.tokenCache;
    if (tokenCache) {
      new Counter<"result">({
        name: "keyportal_token_cache_lookups_total",
        help: "Bearer tokens resolved on this instance: hit (from the cache) or miss (read from the database).",
        labelNames: ["result"],
        registers,
        collect() {
          this.reset();
          this.inc({ result: "hit" }, tokenCache.hits);
          this.inc({ result: "miss" }, tokenCache.misses);
        },
      });
      new Gauge({
        name: "keyportal_token_cache_entries",
        help: "Tokens held in this instance's cache.",
        registers,
        collect() {
          this.set(tokenCache.size);
        },
      });
    }
    new Gauge({
      name: "keyportal_notification_subscriptions",
      help: "Live notification subscriptions on this instance.",
      registers,
      collect() {
        this.set(sources.subscribers());
      },
    });
    // Kept from before prom-client, so existing dashboards keep working
    // (prom-client's own names: nodejs_heap_size_used_bytes, process_start_time_seconds).
    new Gauge({
      name: "nodejs_heap_used_bytes",
      help: "V8 heap in use.",
      registers,
      collect() {
        this.set(process.memoryUsage().heapUsed);
      },
    });
    new Gauge({
      name: "process_uptime_seconds",
      help: "Seconds since this process started.",
      registers,
      collect() {
        this.set(Math.round(process.uptime()));
      },
    });
  }

  /** The Content-Type of render()'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  recordHttpRequest(method: string, path: string, status: number, seconds: number): void {
    this.requests.observe({ method, route: routeOf(path), status: String(status) }, seconds);
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }
}
