import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { EntityManager } from "typeorm";
import type { Database } from "../db/data-source.js";
import type { EventBus } from "../kernel/events.js";
import type { AuditChain } from "../kernel/ports.js";
import type { DatabaseLease } from "./lease.js";

/** pg_advisory_xact_lock key of a sequencing round ("KPSEQ" in ASCII). */
const ROUND_LOCK = 0x4b50534551;

export interface SequencerOptions {
  /** Rows of each kind moved per round. */
  batchSize?: number;
  /** The lease holder sweeps for rows nobody sequenced (their instance died between commit and round) this often. */
  sweepIntervalMs?: number;
  /** Injected faults (tests): runs inside the round's transaction, after its writes, before commit. */
  beforeCommit?: (round: { notifications: number; auditEvents: number }) => Promise<void>;
}

export interface RoundResult {
  notifications: number;
  auditEvents: number;
  /** Highest position assigned, or null when none was. */
  upTo: number | null;
}

/**
 * PostgreSQL only (docs/sequencer.md). Mutations commit concurrently, their
 * notifications without a position and their audit events in audit_pending;
 * a round, in one transaction under a transaction-scoped advisory lock (so
 * one round at a time across every instance), numbers the committed
 * notifications without a position after the highest position so far, in id
 * order, moves the pending audit events into the chain (seq and prevHash
 * from audit_head), and after commit announces "notifications.committed"
 * with the highest position. A round that fails rolls back whole: the next
 * one takes the same rows.
 *
 * Each mutation runs a round (flush) after its commit before it answers, so
 * what a mutation acknowledged is in the chain and has a position; rounds
 * asked for while one runs share the next one (that is the batching). The
 * instance holding the lease also sweeps on a timer, for rows whose instance
 * died between its commit and its round; the lease lapses after its TTL
 * when the holder dies, and another instance takes it.
 */
export class Sequencer {
  readonly holder = randomUUID();
  private current: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private leader = false;
  private stopped = false;
  private readonly batchSize: number;
  private readonly sweepIntervalMs: number;

  constructor(
    /** Without a lease the sequencer only runs the rounds mutations ask for (flush) and never sweeps. */
    private readonly deps: { db: Database; bus: EventBus; audit: AuditChain; lease?: DatabaseLease; logger: Logger },
    private readonly options: SequencerOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 500;
    this.sweepIntervalMs = options.sweepIntervalMs ?? Math.max(50, Math.floor((deps.lease?.ttlMs ?? 30_000) / 3));
  }

  /** Whether this instance holds the sequencer lease (sweeps). */
  get isLeader(): boolean {
    return this.leader;
  }

  start(): void {
    if (!this.deps.db.isPostgres || !this.deps.lease || this.timer || this.stopped) return;
    void this.sweep();
    this.timer = setInterval(() => void this.sweep(), this.sweepIntervalMs);
    this.timer.unref();
  }

  /**
   * Stops sweeping and running rounds. `release: false` leaves the lease to
   * lapse, as a holder that died would.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.next?.catch(() => undefined);
    await this.current?.catch(() => undefined);
    if (this.leader && this.deps.lease && options.release !== false) {
      await this.deps.lease.release(this.holder).catch(() => undefined);
    }
    this.leader = false;
  }

  /**
   * Resolves once every row committed before the call has a position (or
   * rejects if the round failed; the rows then wait for the next round).
   * No-op on SQLite, whose positions are assigned at insert.
   */
  flush(): Promise<void> {
    if (!this.deps.db.isPostgres || this.stopped) return Promise.resolve();
    if (!this.current) return this.begin();
    // A round is under way and may have read before our commit: join the one after it.
    this.next ??= this.current
      .catch(() => undefined)
      .then(() => {
        this.next = null;
        return this.begin();
      });
    return this.next;
  }

  private begin(): Promise<void> {
    const running = this.drain().finally(() => {
      if (this.current === running) this.current = null;
    });
    this.current = running;
    return running;
  }

  private async drain(): Promise<void> {
    for (;;) {
      const result = await this.round();
      if (result.notifications < this.batchSize && result.auditEvents < this.batchSize) return;
    }
  }

  /** One round: one transaction, one batch of each kind. */
  async round(): Promise<RoundResult> {
    const { db, audit, bus } = this.deps;
    const result = await db.transaction(async ({ em }) => {
      await em.query(`SELECT pg_advisory_xact_lock($1)`, [ROUND_LOCK]);
      const positioned = await this.assignPositions(em);
      const auditEvents = await audit.chainPending(em, this.batchSize);
      const round = { notifications: positioned.count, auditEvents, upTo: positioned.upTo };
      await this.options.beforeCommit?.(round);
      return round;
    });
    if (result.upTo !== null) void bus.publish("notifications.committed", { upTo: result.upTo });
    return result;
  }

  private async assignPositions(em: EntityManager): Promise<{ count: number; upTo: number | null }> {
    const rows = (await em.query(
      `WITH batch AS (
         SELECT id FROM notifications WHERE position IS NULL ORDER BY id LIMIT $1
       ), numbered AS (
         SELECT id, (SELECT COALESCE(MAX(position), 0) FROM notifications) + row_number() OVER (ORDER BY id) AS position FROM batch
       ), assigned AS (
         UPDATE notifications n SET position = numbered.position FROM numbered WHERE n.id = numbered.id RETURNING n.position
       )
       SELECT COUNT(*) AS count, MAX(position) AS "upTo" FROM assigned`,
      [this.batchSize],
    )) as Array<{ count: string | number; upTo: string | number | null }>;
    const row = rows[0];
    const count = Number(row?.count ?? 0);
    return { count, upTo: count > 0 && row?.upTo != null ? Number(row.upTo) : null };
  }

  /** The lease holder runs a round on a timer; the others keep trying to take the lease. */
  private async sweep(): Promise<void> {
    if (this.stopped || !this.deps.lease) return;
    try {
      this.leader = await this.deps.lease.tryAcquire(this.holder);
      if (this.leader && !this.stopped) await this.flush();
    } catch (error) {
      this.deps.logger.warn({ err: error }, "sequencer sweep failed; retrying at the next one");
    }
  }
}
