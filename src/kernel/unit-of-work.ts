import type { Logger } from "pino";
import { DomainError, isAuditedRefusal, unavailable } from "./errors.js";
import type { Actor, AuditAppender, IdempotencyPort, IdempotentRequest, NewNotification, OutboxPort, TransactionRunner, Tx } from "./ports.js";

export interface MutationSpec {
  /** e.g. csr.submit */
  action: string;
  targetType: string;
  targetId?: string | null;
  organizationId?: string | null;
  actor: Actor | null;
  details?: Record<string, unknown>;
}

/** What a mutation's work can use: the transaction, its audit record, and the outbox. */
export interface MutationScope extends Tx {
  /** Filled in by the work as it learns them (e.g. the id of what it created). */
  audit: { targetId: string | null; organizationId: string | null; details: Record<string, unknown> };
  notify(notification: NewNotification): Promise<{ id: number }>;
}

/**
 * Runs every state change the same way: one transaction that does the work,
 * appends its audit event and writes its notifications; announcement only
 * after commit. A refused attempt (a DomainError) is audited in a transaction
 * of its own with its error code as the outcome.
 *
 * On PostgreSQL the audit_head row is locked first, so mutations commit one
 * at a time and notification ids become visible in increasing order: that is
 * what lets subscribers resume from an id with no gap.
 *
 * Since they run one at a time anyway, they also wait their turn in this
 * process before taking a pooled connection: otherwise every connection can
 * end up held by a transaction waiting for that lock, while the one holding
 * it waits for a connection to read outside its transaction (the policy's
 * delegation grants), and nothing moves again.
 */
export class Mutations {
  private turn: Promise<unknown> = Promise.resolve();
  /** When the mutation at the head of the queue started (monotonic ms), or null when none runs. */
  private headSince: number | null = null;
  private waiting = 0;
  private readonly deadlineMs: number;

  constructor(
    private readonly db: TransactionRunner,
    private readonly audit: AuditAppender,
    private readonly outbox: OutboxPort,
    private readonly logger: Logger,
    /** A mutation that has not had its turn after deadlineMs fails as UNAVAILABLE, never having run. */
    options: { deadlineMs?: number; idempotency?: IdempotencyPort } = {},
  ) {
    this.deadlineMs = options.deadlineMs ?? 30_000;
    this.idempotency = options.idempotency ?? null;
  }

  private readonly idempotency: IdempotencyPort | null;

  /** Mutations waiting for their turn in this process. */
  get queued(): number {
    return this.waiting;
  }

  /** True while the mutation at the head of the queue has run longer than the deadline (readiness). */
  get stuck(): boolean {
    return this.headSince !== null && performance.now() - this.headSince > this.deadlineMs;
  }

  run<T>(spec: MutationSpec, work: (scope: MutationScope) => Promise<T>): Promise<T> {
    // A request with an Idempotency-Key: this is its seq-th mutation (GraphQL runs a document's mutations in order).
    const request = this.idempotency?.current();
    const keyed = request ? { request, seq: request.seq++ } : null;
    // SQLite: Database.transaction queues transactions on its one connection already.
    if (!this.db.isPostgres) return this.runNow(spec, work, keyed);
    return new Promise<T>((resolve, reject) => {
      let expired = false;
      this.waiting += 1;
      const timer = setTimeout(() => {
        expired = true;
        this.waiting -= 1;
        this.logger.warn({ action: spec.action, deadlineMs: this.deadlineMs }, "a mutation waited past its deadline; refused as UNAVAILABLE");
        reject(unavailable("the database is not keeping up; the change was not made, retry shortly"));
      }, this.deadlineMs);
      timer.unref();
      this.turn = this.turn.then(async () => {
        clearTimeout(timer);
        if (expired) return;
        this.waiting -= 1;
        this.headSince = performance.now();
        try {
          resolve(await this.runNow(spec, work, keyed));
        } catch (error) {
          reject(error);
        } finally {
          this.headSince = null;
        }
      });
    });
  }

  private async runNow<T>(
    spec: MutationSpec,
    work: (scope: MutationScope) => Promise<T>,
    keyed: { request: IdempotentRequest; seq: number } | null,
  ): Promise<T> {
    const record = {
      targetId: spec.targetId ?? null,
      organizationId: spec.organizationId ?? null,
      details: { ...(spec.details ?? {}) },
    };
    try {
      return await this.db.transaction(async (tx) => {
        if (this.db.isPostgres) {
          await tx.em.query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE");
        }
        // Serialized with every other mutation here, so two attempts under one key can never both run.
        if (keyed && this.idempotency) {
          const prior = await this.idempotency.find(tx.em, keyed.request, keyed.seq);
          if (prior.found) return prior.result as T;
        }
        let lastNotification = 0;
        const scope: MutationScope = {
          ...tx,
          audit: record,
          notify: async (n) => {
            const saved = await this.outbox.insert(tx.em, n);
            lastNotification = Math.max(lastNotification, saved.id);
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
        if (lastNotification > 0) tx.afterCommit(() => this.outbox.announce(lastNotification));
        return result;
      });
    } catch (error) {
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
      throw error;
    }
  }
}
