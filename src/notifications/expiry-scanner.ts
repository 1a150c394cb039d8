import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { Brackets, In } from "typeorm";
import type { Mutations } from "../kernel/unit-of-work.js";
import type { ComposedNotification } from "../kernel/ports.js";
import { Certificate } from "../certificates/certificate.entity.js";
import type { CertificateLifecycle } from "../certificates/lifecycle.js";
import type { Clock } from "../kernel/clock.js";
import { type Database, inListChunks } from "../db/data-source.js";
import { Environment, NotificationType } from "../kernel/domain.js";
import { conflict } from "../kernel/errors.js";
import { WorkerHealth, type WorkerState } from "../health.js";
import type { Viewer } from "../viewer.js";
import type { AppState, DatabaseLease } from "./lease.js";
import { Notification } from "./notification.entity.js";
import type { NewNotification } from "./outbox.js";
import { DAY_MS } from "../kernel/time.js";


export type ExpiryNotice = { type: NotificationType.CERTIFICATE_EXPIRED } | { type: NotificationType.CERTIFICATE_EXPIRING; days: number };

/**
 * The reminder rule. A certificate is "inside" a threshold T when at most T
 * days are left. The notice due is for the smallest threshold it is inside:
 * so the clock passing 120, 60, 30, 7 and 1 days before notAfter gives one
 * reminder each, and a certificate that starts inside several thresholds at
 * once (signed for 100 days: inside 120; or first seen 50 days before expiry:
 * inside 120 and 60) gets one reminder, for the threshold it is in now (120;
 * 60), never a burst of stale ones. A threshold skipped that way is never sent
 * later, because the smallest threshold a certificate is inside only ever
 * decreases. At or after notAfter the notice is CERTIFICATE_EXPIRED instead.
 * Each notice is sent once: its dedupeKey is unique in the database.
 */
export function dueExpiryNotice(notAfter: Date, now: Date, thresholdsDays: readonly number[]): ExpiryNotice | null {
  const left = notAfter.getTime() - now.getTime();
  if (left <= 0) return { type: NotificationType.CERTIFICATE_EXPIRED };
  const inside = thresholdsDays.filter((days) => left <= days * DAY_MS);
  if (inside.length === 0) return null;
  return { type: NotificationType.CERTIFICATE_EXPIRING, days: Math.min(...inside) };
}

export function expiryDedupeKey(certificateId: string, notice: ExpiryNotice): string {
  return notice.type === NotificationType.CERTIFICATE_EXPIRED ? `expired:${certificateId}` : `expiring:${certificateId}:${notice.days}`;
}

export { daysUntil } from "../kernel/time.js";

/** The notification of `notice` about `c`. */
function expiryNotification(c: Due, notice: ExpiryNotice, dedupeKey: string): NewNotification {
  const until = c.notAfter.toISOString();
  const what = `The ${c.kind} certificate for ${c.commonName} (${c.environment}, serial ${c.serialNumber})`;
  return {
    type: notice.type,
    organizationId: c.organizationId,
    certificateKind: c.kind,
    environment: c.environment,
    certificateId: c.id,
    csrId: c.csrId,
    daysUntilExpiry: notice.type === NotificationType.CERTIFICATE_EXPIRING ? notice.days : null,
    dedupeKey,
    message:
      notice.type === NotificationType.CERTIFICATE_EXPIRING
        ? `${what} expires on ${until}, within ${notice.days} day${notice.days === 1 ? "" : "s"}. Renew it with a new key before then.`
        : `${what} expired on ${until}.`,
  };
}

const EXPIRED_THROUGH = "expiry-scan:expired-through";

/** How far before the last scan changedSince looks: longer than any transaction that could commit during it. */
const CHANGED_SLACK_MS = 10 * 60_000;

/** Certificates with notAfter in (from, to], optionally only these ids. */
interface ScanRange {
  from: string;
  to: string;
  ids?: string[];
}

export interface ExpiryScannerOptions {
  thresholdsDays: readonly number[];
  batchSize?: number;
  /**
   * Further expiry scans run under the same lease and schedule, and by
   * runExpiryScan (the KMS's own certificates); each answers how many
   * notifications it emitted.
   */
  extraScans?: ReadonlyArray<(actor: Viewer | null) => Promise<number>>;
  /** A scan running longer than this is reported stalled (default 10 minutes). */
  deadlineMs?: number;
}

const scanInProgress = () => conflict("SCAN_IN_PROGRESS", "an expiry scan is already running; its notifications will be emitted by it");

type Due = Pick<Certificate, "id" | "organizationId" | "kind" | "environment" | "commonName" | "serialNumber" | "notAfter" | "csrId">;

/**
 * Emits CERTIFICATE_EXPIRING and CERTIFICATE_EXPIRED notifications.
 *
 * One instance scans at a time: a lease row in app_state ("lease:expiry-scan",
 * see DatabaseLease), chosen over a PostgreSQL advisory lock because it works
 * on SQLite too and needs no connection pinned for the length of the scan.
 * The lease only saves work: exactly-once comes from the unique dedupeKey,
 * checked inside Mutations.run and enforced by the unique index, so even two
 * scanners racing could not emit a notice twice (on PostgreSQL the second
 * insert waits for the first and fails; its round is retried and finds the
 * notice).
 *
 * Cost grows with what is due, not with the table nor with what waits
 * inside the reminder horizon: after a completed scan at time L it reads,
 * through the notAfter index and in batches, only unrevoked certificates
 * whose notAfter crossed a threshold (or expiry) since L, plus those signed
 * since L or whose renewal stopped counting since L (crossedSince,
 * changedSince). The first scan reads everything up to now plus the largest
 * threshold.
 */
export class ExpiryScanner {
  private readonly thresholds: number[];
  private readonly batchSize: number;
  private readonly extraScans: ReadonlyArray<(actor: Viewer | null) => Promise<number>>;
  private timer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private watchTimer: NodeJS.Timeout | null = null;
  private releaseTimer: NodeJS.Timeout | null = null;
  private inFlight: Promise<unknown> = Promise.resolve();
  /** The scan running in this process, if any: one at a time here, and the lease keeps it one at a time everywhere. */
  private current: Promise<number> | null = null;
  /** A holder whose release could not reach the database yet. */
  private unreleased: string | null = null;
  private stopping = false;
  private readonly instance = randomUUID();
  private readonly health: WorkerHealth;

  constructor(
    private readonly deps: {
      db: Database;
      clock: Clock;
      mutations: Mutations;
      lease: DatabaseLease;
      state: AppState;
      logger: Logger;
      lifecycle: CertificateLifecycle;
    },
    options: ExpiryScannerOptions,
  ) {
    this.health = new WorkerHealth("expiry scanner", deps.logger, options.deadlineMs ?? 10 * 60_000);
    this.thresholds = [...new Set(options.thresholdsDays)].sort((a, b) => b - a);
    this.batchSize = options.batchSize ?? 500;
    this.extraScans = options.extraScans ?? [];
  }

  /**
   * Scans once now and then every intervalMs until stop(): an instance that
   * restarts more often than the interval still scans. A scan that finds
   * the lease taken, or fails (the database away), is tried again one lease
   * TTL later rather than one interval later: if the holder died, this
   * instance takes over within one TTL.
   */
  start(intervalMs: number): void {
    if (this.timer) return;
    this.stopping = false;
    const scan = () => {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = null;
      // Failures are logged by the worker health (once, then at most once a minute); a busy lease is no failure.
      this.inFlight = this.runOnce().catch(() => {
        if (this.stopping) return;
        this.retryTimer = setTimeout(scan, this.deps.lease.ttlMs);
        this.retryTimer.unref();
      });
    };
    this.timer = setInterval(scan, intervalMs);
    this.timer.unref();
    // Every TTL: a lease left by a holder that died mid-scan (on any instance) means a scan is owed now.
    this.watchTimer = setInterval(() => {
      if (this.current || this.retryTimer) return;
      this.deps.lease.abandoned().then(
        (abandoned) => {
          if (abandoned && !this.current && !this.stopping) {
            this.deps.logger.warn({ lease: this.deps.lease.key }, "the expiry-scan lease was abandoned mid-scan; taking over");
            scan();
          }
        },
        () => undefined, // the database is away: the next tick looks again
      );
    }, this.deps.lease.ttlMs);
    this.watchTimer.unref();
    scan();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.timer = null;
    this.retryTimer = null;
    this.watchTimer = null;
    await this.inFlight;
    await this.current?.catch(() => undefined);
  }

  /**
   * One scan; resolves with the number of notifications emitted. While
   * another scan runs (here or on another instance) it waits up to waitMs
   * (real time) for it to end, then refuses with CONFLICT /
   * SCAN_IN_PROGRESS: never a 0 that would read as "nothing due".
   */
  async runOnce(opts: { actor?: Viewer | null; waitMs?: number } = {}): Promise<number> {
    const deadline = performance.now() + (opts.waitMs ?? 0);
    while (this.current) {
      const left = deadline - performance.now();
      if (left <= 0) throw scanInProgress();
      await Promise.race([this.current.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, left))]);
    }
    const run = this.health.round(() => this.scanUnderLease(opts.actor ?? null, deadline));
    this.current = run;
    try {
      return await run;
    } finally {
      if (this.current === run) this.current = null;
    }
  }

  /** Health of the scan loop (readiness, metrics). */
  get state(): WorkerState {
    return this.health.state;
  }

  private async scanUnderLease(actor: Viewer | null, deadline: number): Promise<number> {
    const { lease } = this.deps;
    if (this.unreleased) await this.releaseNow(this.unreleased);
    const holder = `${this.instance}:${randomUUID()}`;
    while (!(await lease.tryAcquire(holder))) {
      if (performance.now() >= deadline) throw scanInProgress();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Renewed while the scan works, so a short TTL is enough; a lost renewal stops the scan at its next batch.
    let lost = false;
    const renewal = setInterval(() => {
      lease.tryAcquire(holder).then(
        (held) => {
          if (!held) lost = true;
        },
        () => undefined, // the database is away; the scan's own queries fail too
      );
    }, Math.max(100, Math.floor(lease.ttlMs / 3)));
    renewal.unref();
    try {
      let emitted = await this.scan(holder, actor, () => lost);
      for (const extra of this.extraScans) emitted += await extra(actor);
      return emitted;
    } finally {
      clearInterval(renewal);
      await this.releaseNow(holder);
    }
  }

  /**
   * Releases the lease; when the database cannot be reached, keeps trying
   * every second in the background (and before the next scan here), so the
   * lease is free as soon as the database is back instead of after its TTL.
   */
  private async releaseNow(holder: string): Promise<void> {
    try {
      await this.deps.lease.release(holder);
      if (this.unreleased === holder) this.unreleased = null;
      if (this.releaseTimer) clearTimeout(this.releaseTimer);
      this.releaseTimer = null;
    } catch {
      this.unreleased = holder;
      if (this.stopping || this.releaseTimer) return;
      this.releaseTimer = setTimeout(() => {
        this.releaseTimer = null;
        if (this.unreleased) void this.releaseNow(this.unreleased);
      }, 1000);
      this.releaseTimer.unref();
    }
  }

  private async scan(holder: string, actor: Viewer | null, leaseLost: () => boolean): Promise<number> {
    const now = this.deps.clock.now();
    // Expiry by time, stored: the certificates whose notAfter has passed move to EXPIRED with their tallies.
    await this.deps.lifecycle.sweep(now);
    if (this.thresholds.length === 0) return 0;
    const horizon = new Date(now.getTime() + this.thresholds[0]! * DAY_MS).toISOString();
    const last = (await this.deps.state.get(EXPIRED_THROUGH)) ?? "";
    let emitted = 0;
    // A batch's transaction (and, on PostgreSQL, its sequencing round) runs while the next batch is read and
    // composed: at most two in flight. A certificate can come due through two ranges (crossed a threshold and
    // signed since): a notice handed to an earlier batch of this scan is not handed again, for the batch in
    // flight has not committed yet and its twin would fail on the dedupeKey.
    const pipeline: { inFlight: Promise<number> | null } = { inFlight: null };
    const handed = new Set<string>();
    const emitNext = async (batch: Due[]) => {
      const previous = pipeline.inFlight;
      const current = this.emit(batch, now, actor, handed);
      // Handled here so that it never counts as unhandled while the previous one is awaited; awaited below.
      current.catch(() => undefined);
      pipeline.inFlight = current;
      if (previous) emitted += await previous;
    };
    const each = async (range: ScanRange) => {
      let cursor = { notAfter: range.from, id: "" };
      for (;;) {
        const batch = await this.dueBatch(now, range, cursor);
        if (batch.length === 0) return;
        await emitNext(batch);
        const lastRow = batch[batch.length - 1]!;
        cursor = { notAfter: lastRow.notAfter.toISOString(), id: lastRow.id };
        // Fewer than asked for, or every id asked about: nothing more in this range.
        if (batch.length < this.batchSize || (range.ids && batch.length >= range.ids.length)) return;
        if (leaseLost() || !(await this.deps.lease.tryAcquire(holder))) throw new Error("lost the expiry-scan lease during a scan");
      }
    };
    try {
      if (!last || last > now.toISOString()) {
        // No completed scan yet (or the clock went back): everything inside the horizon.
        await each({ from: last, to: horizon });
      } else {
        for (const range of this.crossedSince(last, now, horizon)) await each(range);
        const changed = await this.changedSince(last, now);
        for (const part of inListChunks(changed)) await each({ from: last, to: horizon, ids: part });
      }
      if (pipeline.inFlight) emitted += await pipeline.inFlight;
    } finally {
      // A scan that failed still waits for the batch it started, so that none outlives its lease.
      await pipeline.inFlight?.catch(() => undefined);
    }
    // Every certificate with notAfter up to now has had its CERTIFICATE_EXPIRED (or needs none): later scans start here.
    await this.deps.state.set(EXPIRED_THROUGH, now.toISOString());
    return emitted;
  }

  /**
   * What may be due since the last completed scan at `last`, for a cost that
   * follows it rather than the table: a certificate crosses threshold T
   * (0: expiry) when its notAfter is in (last + T, now + T]. Those ranges,
   * merged, within (last, horizon].
   */
  private crossedSince(last: string, now: Date, horizon: string): ScanRange[] {
    const lastMs = new Date(last).getTime();
    const ranges = [...this.thresholds, 0]
      .map((days) => ({ from: lastMs + days * DAY_MS, to: now.getTime() + days * DAY_MS }))
      .sort((a, b) => a.from - b.from);
    const merged: Array<{ from: number; to: number }> = [];
    for (const r of ranges) {
      const prev = merged[merged.length - 1];
      if (prev && r.from <= prev.to) prev.to = Math.max(prev.to, r.to);
      else merged.push({ ...r });
    }
    return merged.map((r) => ({ from: new Date(r.from).toISOString(), to: new Date(Math.min(r.to, new Date(horizon).getTime())).toISOString() }));
  }

  /**
   * Certificates whose notice may have changed since `last` without a
   * threshold passing: signed since (already inside a threshold), or whose
   * renewal stopped counting (the successor revoked or expired). Looked up
   * a lease length before `last`, so a transaction that committed while the
   * last scan ran is not missed.
   */
  private async changedSince(last: string, now: Date): Promise<string[]> {
    const since = new Date(new Date(last).getTime() - CHANGED_SLACK_MS).toISOString();
    const em = this.deps.db.manager;
    const signed = await em
      .createQueryBuilder(Certificate, "c")
      .select("c.id", "id")
      .where("c.createdAt > :since", { since })
      .getRawMany<{ id: string }>();
    const successors = await em
      .createQueryBuilder(Certificate, "s")
      .select("s.renewalOfId", "id")
      .where("s.renewalOfId IS NOT NULL")
      .andWhere(
        new Brackets((or) =>
          or
            .where("s.environment IN (:...envs) AND s.revokedAt > :since", { envs: Object.values(Environment), since })
            .orWhere("s.notAfter > :since AND s.notAfter <= :now", { now: now.toISOString() }),
        ),
      )
      .getRawMany<{ id: string }>();
    return [...new Set([...signed, ...successors].map((r) => r.id))];
  }

  /**
   * The next batch after `cursor`. Like every read of the scan outside its
   * transactions, through db.manager: committed data, and on SQLite the
   * reading connection, so it does not queue behind the batch being written.
   */
  private dueBatch(now: Date, range: ScanRange, cursor: { notAfter: string; id: string }): Promise<Due[]> {
    const qb = this.deps.db.manager
      .createQueryBuilder(Certificate, "c")
      .leftJoin(Certificate, "s", "s.id = c.renewedById")
      .select(["c.id", "c.organizationId", "c.kind", "c.environment", "c.commonName", "c.serialNumber", "c.notAfter", "c.csrId"])
      .where("c.notAfter <= :to", { to: range.to })
      .andWhere("(c.notAfter > :afterNotAfter OR (c.notAfter = :afterNotAfter AND c.id > :afterId))", {
        afterNotAfter: cursor.notAfter,
        afterId: cursor.id,
      })
      .andWhere("c.revokedAt IS NULL")
      // Renewed by a successor that is still good: the officers have acted, no reminder.
      .andWhere("(s.id IS NULL OR s.revokedAt IS NOT NULL OR s.notAfter <= :now)", { now: now.toISOString() });
    if (range.ids) qb.andWhere("c.id IN (:...ids)", { ids: range.ids });
    // A range of notAfter alone: its lower bound also apart from the OR, which is all PostgreSQL bounds an index
    // range by; else it walks every certificate that expired before the range. (With ids, their primary key is the way in.)
    else qb.andWhere("c.notAfter >= :afterNotAfter");
    return qb.orderBy("c.notAfter", "ASC").addOrderBy("c.id", "ASC").limit(this.batchSize).getMany();
  }

  /**
   * One mutation for the batch. Before its transaction: the notices'
   * messages, recipients (one read of delegations, organizations and
   * officers for the batch), subjects (certificates, CSRs, organizations by
   * IN lists) and email text. Inside: the dedupe re-check and the multi-row
   * INSERTs of the notifications and their emails, whatever the batch's size.
   */
  private async emit(batch: Due[], now: Date, actor: Viewer | null, handed: Set<string>): Promise<number> {
    const notices = batch.flatMap((certificate) => {
      const notice = dueExpiryNotice(certificate.notAfter, now, this.thresholds);
      if (!notice) return [];
      const key = expiryDedupeKey(certificate.id, notice);
      return handed.has(key) ? [] : [{ certificate, notice, key }];
    });
    for (const { key } of notices) handed.add(key);
    if (notices.length === 0) return 0;
    const already = await this.existingKeys(this.deps.db.manager, notices.map((n) => n.key));
    const missing = notices.filter((n) => !already.has(n.key));
    if (missing.length === 0) return 0;
    return this.deps.mutations.run(
      { action: "certificate.expiry-scan", targetType: "Certificate", actor, details: {} },
      async ({ em, audit, notifyMany }, composed: ComposedNotification[]) => {
        // Again inside the transaction: another scan may have emitted some meanwhile.
        const existing = await this.existingKeys(em, missing.map((n) => n.key));
        const fresh = composed.filter((c) => !existing.has(c.notification.dedupeKey!));
        await notifyMany(fresh);
        const counts: Record<string, number> = {};
        for (const { notification: n } of fresh) {
          const label = n.type === NotificationType.CERTIFICATE_EXPIRING ? `expiring${n.daysUntilExpiry}` : "expired";
          counts[label] = (counts[label] ?? 0) + 1;
        }
        audit.details = { emitted: fresh.length, ...counts };
        return fresh.length;
      },
      ({ compose }) => compose(missing.map(({ certificate, notice, key }) => expiryNotification(certificate, notice, key))),
    );
  }

  private async existingKeys(em: import("typeorm").EntityManager, keys: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (const part of inListChunks(keys)) {
      const rows = await em.find(Notification, { where: { dedupeKey: In(part) }, select: { id: true, dedupeKey: true } });
      for (const row of rows) if (row.dedupeKey) found.add(row.dedupeKey);
    }
    return found;
  }
}
