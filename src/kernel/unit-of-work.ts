import type { Logger } from "pino";
import { DomainError, isAuditedRefusal, unavailable } from "./errors.js";
import type {
  Actor,
  AuditAppender,
  ComposedNotification,
  IdempotencyPort,
  IdempotentRequest,
  NewNotification,
  OutboxPort,
  PreparedEmails,
  TransactionRunner,
  Tx,
} from "./ports.js";

export interface MutationSpec {
  /** e.g. csr.submit */
  action: string;
  targetType: string;
  targetId?: string | null;
  organizationId?: string | null;
  actor: Actor | null;
  details?: Record<string, unknown>;
}

/** The audit record of a mutation, filled in by its work as it learns them (e.g. the id of what it created). */
export interface MutationRecord {
  targetId: string | null;
  organizationId: string | null;
  details: Record<string, unknown>;
}

/** What a mutation's work can use: the transaction, its audit record, and the outbox. */
export interface MutationScope extends Tx {
  audit: MutationRecord;
  /**
   * Writes the notification and the email deliveries it causes: to the
   * recipients and about the subjects given (prepared before the
   * transaction), or else found and loaded in it.
   */
  notify(notification: NewNotification, emails?: PreparedEmails): Promise<{ id: number; position?: number | null }>;
  /**
   * Writes many notifications composed before the transaction (PrepareScope's
   * compose) with their email deliveries, in a few multi-row INSERTs
   * whatever their number; the saved rows in the order given.
   */
  notifyMany(composed: readonly ComposedNotification[]): Promise<Array<{ id: number; position?: number | null }>>;
}

/** What a mutation's preparation (before its transaction) can use. */
export interface PrepareScope {
  audit: MutationRecord;
  /** The email recipients a notification will have, read from committed data. */
  recipients(notification: NewNotification): Promise<string[]>;
  /** Notifications with their recipients and email text, read from committed data in a few statements whatever their number. */
  compose(notifications: readonly NewNotification[]): Promise<ComposedNotification[]>;
}

/**
 * Runs every state change the same way: one transaction that does the work,
 * appends its audit event and writes its notifications; announcement only
 * after commit. A refused attempt (a DomainError) is audited in a transaction
 * of its own with its error code as the outcome.
 *
 * Mutations run concurrently (SQLite queues them on its one connection in
 * Database.transaction). Nothing here orders them: on PostgreSQL their
 * notifications and audit events get their positions from the sequencer
 * after commit, and a mutation answers once that is done (docs/sequencer.md).
 * Invariants between mutations hold by guarded updates, unique constraints
 * and narrow row locks in the services; two attempts under one
 * Idempotency-Key are serialized by a lock on that key.
 *
 * On PostgreSQL a mutation that has not begun its transaction within
 * deadlineMs (all pooled connections busy) fails as UNAVAILABLE and never
 * runs; so does every new one while a transaction of this instance has run
 * past the deadline (`stuck`, which also fails readiness).
 */
export class Mutations {
  /** Mutations waiting for a slot or a connection (their transaction has not begun). */
  private waiting = 0;
  private freeSlots: number;
  private readonly slotWaiters: Array<() => void> = [];
  /** When each running transaction began (monotonic ms). */
  private readonly running = new Set<{ since: number }>();
  private readonly deadlineMs: number;

  constructor(
    private readonly db: TransactionRunner,
    private readonly audit: AuditAppender,
    private readonly outbox: OutboxPort,
    private readonly logger: Logger,
    /** A mutation whose transaction has not begun after deadlineMs fails as UNAVAILABLE, never having run. */
    options: { deadlineMs?: number; idempotency?: IdempotencyPort; maxConcurrent?: number } = {},
  ) {
    this.deadlineMs = options.deadlineMs ?? 30_000;
    // The pool has 10 connections (db/data-source.ts): two stay for reads outside transactions, leases and sequencer rounds.
    this.freeSlots = options.maxConcurrent ?? 8;
    this.idempotency = options.idempotency ?? null;
  }

  private readonly idempotency: IdempotencyPort | null;

  /** Mutations waiting for their transaction to begin in this process. */
  get queued(): number {
    return this.waiting;
  }

  /** True while a mutation's transaction has run longer than the deadline (readiness). */
  get stuck(): boolean {
    const now = performance.now();
    for (const r of this.running) if (now - r.since > this.deadlineMs) return true;
    return false;
  }

  /**
   * Runs `work` in the mutation's transaction. `prepare`, when given, runs
   * first and outside it (parsing, policy reads, signing: nothing slow is
   * left inside the serialization point); its result is handed to the work,
   * which re-reads only the guards that decide. A refusal in either is
   * audited the same way.
   */
  async run<T, P = void>(
    spec: MutationSpec,
    work: (scope: MutationScope, prepared: P) => Promise<T>,
    prepare?: (scope: PrepareScope) => Promise<P>,
  ): Promise<T> {
    // A request with an Idempotency-Key: this is its seq-th mutation (GraphQL runs a document's mutations in order).
    const request = this.idempotency?.current();
    const keyed = request ? { request, seq: request.seq++ } : null;
    const record: MutationRecord = {
      targetId: spec.targetId ?? null,
      organizationId: spec.organizationId ?? null,
      details: { ...(spec.details ?? {}) },
    };
    // A transaction of this instance has run past the deadline: the database is not keeping up; shed the load.
    if (this.db.isPostgres && this.stuck) {
      this.logger.warn({ action: spec.action, deadlineMs: this.deadlineMs }, "a mutation ran past its deadline; refusing new ones as UNAVAILABLE");
      throw unavailable("the database is not keeping up; the change was not made, retry shortly");
    }
    let prepared = undefined as P;
    if (prepare) {
      // A retried request answered already: its recorded result, without preparing again (checked again inside).
      if (keyed && this.idempotency) {
        const prior = await this.idempotency.find(this.db.manager, keyed.request, keyed.seq);
        if (prior.found) {
          // As after a commit: answered once the original's events are in the chain (it may have died before its round).
          await this.settled(spec);
          return prior.result as T;
        }
      }
      try {
        prepared = await prepare({
          audit: record,
          recipients: (n) => this.outbox.recipients(this.db.manager, n),
          compose: (notifications) => this.outbox.compose(this.db.manager, notifications),
        });
      } catch (error) {
        await this.refused(spec, record, error);
        throw error;
      }
    }
    const unit = (scope: MutationScope) => work(scope, prepared);
    // SQLite: Database.transaction queues transactions on its one connection; they run in turn, without a deadline.
    if (!this.db.isPostgres) return this.runNow(spec, record, unit, keyed, { expired: false, begun: false }, () => undefined);
    return new Promise<T>((resolve, reject) => {
      const turn = { expired: false, begun: false };
      this.waiting += 1;
      const timer = setTimeout(() => {
        if (turn.begun) return;
        turn.expired = true;
        this.waiting -= 1;
        this.logger.warn({ action: spec.action, deadlineMs: this.deadlineMs }, "a mutation waited past its deadline; refused as UNAVAILABLE");
        reject(unavailable("the database is not keeping up; the change was not made, retry shortly"));
      }, this.deadlineMs);
      timer.unref();
      void this.slot().then((release) => {
        if (turn.expired) {
          release();
          return;
        }
        this.runNow(spec, record, unit, keyed, turn, () => {
          clearTimeout(timer);
          this.waiting -= 1;
        }, release).then(resolve, (error: unknown) => {
          if (!turn.expired) reject(error);
        });
      });
    });
  }

  /**
   * One of maxConcurrent transaction slots (PostgreSQL): fewer than the pool
   * has connections, so that a transaction whose work reads through the pool
   * outside itself (the policy's delegation grants) always finds one.
   */
  private slot(): Promise<() => void> {
    const release = () => {
      const next = this.slotWaiters.shift();
      if (next) next();
      else this.freeSlots += 1;
    };
    if (this.freeSlots > 0) {
      this.freeSlots -= 1;
      return Promise.resolve(release);
    }
    return new Promise((resolve) => this.slotWaiters.push(() => resolve(release)));
  }

  private async runNow<T>(
    spec: MutationSpec,
    record: MutationRecord,
    work: (scope: MutationScope) => Promise<T>,
    keyed: { request: IdempotentRequest; seq: number } | null,
    turn: { expired: boolean; begun: boolean },
    onBegin: () => void,
    onEnd: () => void = () => undefined,
  ): Promise<T> {
    const timing = { since: 0 };
    let result: T;
    try {
      result = await this.db.transaction(async (tx) => {
        // Refused at the deadline while waiting for a connection: it must not run now.
        if (turn.expired) throw unavailable("the database is not keeping up; the change was not made, retry shortly");
        turn.begun = true;
        onBegin();
        timing.since = performance.now();
        this.running.add(timing);
        if (keyed && this.idempotency) {
          // Two attempts under one key wait for each other here, so they can never both run.
          await this.idempotency.lock(tx.em, keyed.request, keyed.seq);
          const prior = await this.idempotency.find(tx.em, keyed.request, keyed.seq);
          if (prior.found) return prior.result as T;
        }
        let lastNotification = 0;
        const scope: MutationScope = {
          ...tx,
          audit: record,
          notify: async (n, emails) => {
            const saved = await this.outbox.insert(tx.em, n, emails);
            lastNotification = Math.max(lastNotification, saved.position ?? 0);
            return saved;
          },
          notifyMany: async (composed) => {
            const saved = await this.outbox.insertMany(tx.em, composed);
            for (const row of saved) lastNotification = Math.max(lastNotification, row.position ?? 0);
            return saved;
          },
        };
        const result = await work(scope);
        await this.audit.append(tx.em, {
          actorId: spec.actor?.officer.id ?? null,
          organizationId: record.organizationId,
          action: spec.action,
          outcome: "SUCCESS",
          targetType: spec.targetType,
          targetId: record.targetId,
          details: record.details,
        });
        if (keyed && this.idempotency) {
          const keys = this.idempotency;
          await keys.record(tx.em, keyed.request, keyed.seq, spec.action, result);
          tx.afterCommit(() => keys.purgeSoon());
        }
        // SQLite: positions were assigned at insert; PostgreSQL: the sequencer announces after its round.
        if (lastNotification > 0 && !this.db.isPostgres) tx.afterCommit(() => this.outbox.announce(lastNotification));
        return result;
      });
    } catch (error) {
      this.running.delete(timing);
      onEnd();
      if (turn.expired) throw error;
      await this.refused(spec, record, error);
      throw error;
    }
    this.running.delete(timing);
    onEnd();
    // Committed: answer once its audit event and notifications have their positions (PostgreSQL; at once on SQLite).
    await this.settled(spec);
    return result;
  }

  private settled(spec: MutationSpec): Promise<void> {
    return this.audit.settle().catch((error: unknown) =>
      this.logger.error({ err: error, action: spec.action }, "a sequencer round failed after a commit; the lease holder's sweep will sequence it"),
    );
  }

  /** A refused attempt (a DomainError) is audited in a transaction of its own with its error code as the outcome. */
  private async refused(spec: MutationSpec, record: MutationRecord, error: unknown): Promise<void> {
    if (isAuditedRefusal(error)) {
      // e.g. something of ours was about to be signed wrong: an alert for the operators, and the audit says why (never the client's business).
      if (error.alert) this.logger.error({ action: spec.action, targetId: record.targetId, ...error.alert.fields }, error.alert.message);
      record.details = { ...record.details, ...error.auditDetails };
    }
    if (error instanceof DomainError) {
      await this.audit
        .appendAlone({
          actorId: spec.actor?.officer.id ?? null,
          organizationId: record.organizationId,
          action: spec.action,
          outcome: error.code,
          targetType: spec.targetType,
          targetId: record.targetId,
          details: { ...record.details, reason: error.reason },
        })
        .catch((auditError: unknown) => this.logger.error({ err: auditError, action: spec.action }, "could not audit a refused attempt"));
    }
  }
}
