import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { In } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import type { EventBus } from "../kernel/events.js";
import { WorkerHealth, type WorkerState } from "../health.js";
import { EmailDelivery, EmailDeliveryStatus } from "./email-delivery.entity.js";
import type { Mailer } from "./mailer.js";

export interface DeliveryWorkerOptions {
  /** Rows claimed per round. */
  batchSize?: number;
  /** Looks for due rows this often (retries become due as the clock moves). */
  pollIntervalMs?: number;
  /** How long a claim keeps other workers away; renewed every third of it while the row is in hand. */
  claimMs?: number;
  /** A round running longer than this is reported stalled and the loop goes on without it. */
  deadlineMs?: number;
  /** Retry delay after the first failure; doubles with every further failure, up to backoffMaxMs, ±25% jitter. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** After this many failed attempts the row becomes FAILED (with a base of 1 s and a cap of 1 h, about a day). */
  maxAttempts?: number;
  random?: () => number;
}

export interface DeliveryRound {
  sent: number;
  failed: number;
}

/** An SMTP error as stored in lastError: code and message, with any credentials in a URL masked. */
export function describeSendError(error: unknown): string {
  const e = error as { code?: unknown; responseCode?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : error instanceof Error ? error.name : "ERROR";
  const status = typeof e.responseCode === "number" ? ` ${e.responseCode}` : "";
  const message = typeof e.message === "string" ? e.message : String(error);
  return `${code}${status}: ${message}`.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@\s/]*@/gi, "$1***@").replace(/\s+/g, " ").slice(0, 500);
}

/**
 * Sends due email deliveries: after every commit that wrote notifications
 * (kicked by "notifications.committed") and on a timer for retries. A row is
 * claimed with a guarded UPDATE (still PENDING, no live claim), so two
 * workers, on one instance or several, never send the same row; the claim
 * is short and renewed while the row is in hand. Sending and recording SENT
 * are separate steps: when the SMTP server accepted a message but SENT
 * cannot be written (the database away), the write-back is retried every
 * second, the claim kept, and the message never sent again. The one window
 * left: the process dies after the SMTP server accepted a message and before
 * SENT is written; that message is sent again once its claim expires, with
 * the same Message-ID.
 */
export class EmailDeliveryWorker {
  private readonly workerId = randomUUID();
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly claimMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly maxAttempts: number;
  private readonly random: () => number;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private queued = false;
  private stopping = false;
  private readonly messageIdDomain: string;
  /** Rows this worker has claimed and not yet finished with: their claims are renewed. */
  private readonly inHand = new Set<string>();
  /** Rows being handed to the mailer right now (never claimed twice by this worker's own rounds). */
  private readonly sending = new Set<string>();
  /** Accepted by the SMTP server, SENT not yet recorded. */
  private readonly unrecorded = new Map<string, { sentAt: Date; messageId: string; attempts: number }>();
  private renewTimer: NodeJS.Timeout | null = null;
  private recordTimer: NodeJS.Timeout | null = null;
  private readonly health: WorkerHealth;

  constructor(
    private readonly deps: { db: Database; clock: Clock; mailer: Mailer; bus: EventBus; logger: Logger; from: string },
    options: DeliveryWorkerOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 20;
    this.pollIntervalMs = options.pollIntervalMs ?? 5000;
    this.claimMs = options.claimMs ?? 60_000;
    this.health = new WorkerHealth("mail worker", deps.logger, options.deadlineMs ?? 60_000);
    this.backoffBaseMs = options.backoffBaseMs ?? 1000;
    this.backoffMaxMs = options.backoffMaxMs ?? 3_600_000;
    this.maxAttempts = options.maxAttempts ?? 30;
    this.random = options.random ?? Math.random;
    this.messageIdDomain = /@([^>\s]+)>?$/.exec(deps.from)?.[1] ?? "keyportal.invalid";
  }

  start(): void {
    if (this.timer) return;
    this.stopping = false;
    this.unsubscribe = this.deps.bus.subscribe("notifications.committed", () => this.kick());
    this.timer = setInterval(() => this.kick(), this.pollIntervalMs);
    this.timer.unref();
    this.renewTimer = setInterval(() => void this.renewClaims(), Math.max(100, Math.floor(this.claimMs / 3)));
    this.renewTimer.unref();
    this.kick(); // whatever a previous run left pending
  }

  /** Health of the mail loop (readiness, metrics). */
  get state(): WorkerState {
    return this.health.state;
  }

  /** Stops the timer and waits for the round in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    if (this.renewTimer) clearInterval(this.renewTimer);
    if (this.recordTimer) clearTimeout(this.recordTimer);
    this.timer = null;
    this.renewTimer = null;
    this.recordTimer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.chain;
  }

  /** Send what is due soon, in the background (coalesced). */
  kick(): void {
    if (this.stopping || this.queued) return;
    this.queued = true;
    this.chain = this.chain.then(async () => {
      this.queued = false;
      // Failures and stalls are logged by the worker health (once, then at most once a minute).
      await this.health.round(() => this.round()).catch(() => undefined);
    });
  }

  /** Sends everything due now and resolves with what happened (after any round in flight). */
  runOnce(): Promise<DeliveryRound> {
    const result = this.chain.then(() => this.health.round(() => this.round()));
    this.chain = result.catch(() => undefined);
    return result;
  }

  /** Delay before attempt `attempts + 1`, given `attempts` failures so far. */
  backoffMs(attempts: number): number {
    const exponential = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** Math.max(0, attempts - 1));
    return Math.round(exponential * (0.75 + 0.5 * this.random()));
  }

  private async round(): Promise<DeliveryRound> {
    const total: DeliveryRound = { sent: 0, failed: 0 };
    await this.recordUnrecorded();
    // Due as of the start of the round: a row that fails now is due again later, not in this round.
    const dueBy = this.deps.clock.now();
    while (!this.stopping) {
      const claimed = await this.claim(dueBy);
      if (claimed.length === 0) break;
      // The claimed batch in parallel: the SMTP mailer pools a few connections.
      const outcomes = await Promise.all(claimed.map((delivery) => this.deliver(delivery)));
      for (const sent of outcomes) {
        if (sent) total.sent += 1;
        else total.failed += 1;
      }
    }
    return total;
  }

  private async claim(dueBy: Date): Promise<EmailDelivery[]> {
    const now = this.deps.clock.now();
    const nowIso = now.toISOString();
    const until = new Date(now.getTime() + this.claimMs);
    // Looked for on the reading connection: a round with nothing due (most of them: every commit with a notification
    // kicks one) takes no turn in the write queue. The claim below re-checks each row's state in its UPDATE.
    const due = await this.deps.db.manager
      .createQueryBuilder(EmailDelivery, "d")
      .select("d.id", "id")
      .where("d.status = :pending", { pending: EmailDeliveryStatus.PENDING })
      .andWhere("d.nextAttemptAt <= :dueBy", { dueBy: dueBy.toISOString() })
      // Its own claims too: a row claimed by a round that failed before sending (the database went away) is taken up again at once.
      .andWhere("(d.claimedUntil IS NULL OR d.claimedUntil <= :now OR d.claimedBy = :me)", { now: nowIso, me: this.workerId })
      .orderBy("d.nextAttemptAt", "ASC")
      .addOrderBy("d.id", "ASC")
      .limit(this.batchSize)
      .getRawMany<{ id: string }>();
    if (due.every(({ id }) => this.sending.has(id))) return [];
    return this.deps.db.isolated(async (em) => {
      const mine: string[] = [];
      for (const { id } of due) {
        if (this.sending.has(id)) continue;
        const result = await em
          .createQueryBuilder()
          .update(EmailDelivery)
          .set({ claimedUntil: until, claimedBy: this.workerId })
          .where("id = :id AND status = :pending AND (claimedUntil IS NULL OR claimedUntil <= :now OR claimedBy = :me)", {
            id,
            pending: EmailDeliveryStatus.PENDING,
            now: nowIso,
            me: this.workerId,
          })
          .execute();
        if (result.affected === 1) {
          mine.push(id);
          this.inHand.add(id);
        }
      }
      if (mine.length === 0) return [];
      return em.find(EmailDelivery, { where: { id: In(mine) }, order: { nextAttemptAt: "ASC", id: "ASC" } });
    });
  }

  private async deliver(delivery: EmailDelivery): Promise<boolean> {
    if (this.unrecorded.has(delivery.id)) {
      // Claimed again (after a long outage let the claim lapse): it was sent already, only SENT is missing.
      await this.recordUnrecorded().catch(() => undefined);
      return true;
    }
    this.sending.add(delivery.id);
    try {
      return await this.sendAndRecord(delivery);
    } finally {
      this.sending.delete(delivery.id);
    }
  }

  private async sendAndRecord(delivery: EmailDelivery): Promise<boolean> {
    const messageId = `<${delivery.id}@${this.messageIdDomain}>`;
    let info: { messageId: string };
    try {
      info = await this.deps.mailer.send({
        from: this.deps.from,
        to: delivery.recipient,
        subject: delivery.subject,
        text: delivery.body,
        messageId,
      });
    } catch (error) {
      await this.recordFailure(delivery, error).catch((writeError: unknown) =>
        // The claim lapses and the row is tried again later: nothing was sent.
        this.deps.logger.warn({ deliveryId: delivery.id, err: { message: (writeError as Error).message } }, "could not record a failed email delivery"),
      );
      this.inHand.delete(delivery.id);
      return false;
    }
    // Accepted: from here on the message is never sent again by this worker, whatever the database does.
    this.unrecorded.set(delivery.id, { sentAt: this.deps.clock.now(), messageId: info.messageId.slice(0, 300), attempts: delivery.attempts + 1 });
    await this.recordUnrecorded().catch(() => undefined);
    return true;
  }

  /** Writes SENT for every accepted message not yet recorded; on failure tries again in a second. */
  private async recordUnrecorded(): Promise<void> {
    for (const [id, sent] of [...this.unrecorded]) {
      try {
        await this.deps.db.isolated((em) =>
          em
            .createQueryBuilder()
            .update(EmailDelivery)
            .set({
              status: EmailDeliveryStatus.SENT,
              sentAt: sent.sentAt,
              messageId: sent.messageId,
              attempts: sent.attempts,
              claimedUntil: null,
              claimedBy: null,
              lastError: null,
            })
            .where("id = :id AND status = :pending", { id, pending: EmailDeliveryStatus.PENDING })
            .execute(),
        );
        this.unrecorded.delete(id);
        this.inHand.delete(id);
      } catch (error) {
        if (!this.recordTimer && !this.stopping) {
          this.deps.logger.warn({ deliveryId: id, err: { message: (error as Error).message } }, "an accepted email is not yet recorded as SENT; retrying the write-back");
          this.recordTimer = setTimeout(() => {
            this.recordTimer = null;
            void this.recordUnrecorded().catch(() => undefined);
          }, 1000);
          this.recordTimer.unref();
        }
        throw error;
      }
    }
  }

  /** Keeps the claims of rows in hand (sending, or sent and awaiting write-back) from lapsing. */
  private async renewClaims(): Promise<void> {
    const ids = [...this.inHand];
    if (ids.length === 0) return;
    const until = new Date(this.deps.clock.now().getTime() + this.claimMs);
    try {
      await this.deps.db.isolated((em) =>
        em
          .createQueryBuilder()
          .update(EmailDelivery)
          .set({ claimedUntil: until })
          .where("id IN (:...ids) AND status = :pending AND claimedBy = :me", { ids, pending: EmailDeliveryStatus.PENDING, me: this.workerId })
          .execute(),
      );
    } catch {
      // The database is away; the next renewal tries again.
    }
  }

  private async recordFailure(delivery: EmailDelivery, error: unknown): Promise<void> {
    const attempts = delivery.attempts + 1;
    const now = this.deps.clock.now();
    const giveUp = attempts >= this.maxAttempts;
    const lastError = describeSendError(error);
    this.deps.logger.warn({ deliveryId: delivery.id, attempts, giveUp, lastError }, "email delivery failed");
    await this.deps.db.isolated((em) =>
      em
        .createQueryBuilder()
        .update(EmailDelivery)
        .set({
          status: giveUp ? EmailDeliveryStatus.FAILED : EmailDeliveryStatus.PENDING,
          attempts,
          nextAttemptAt: new Date(now.getTime() + this.backoffMs(attempts)),
          claimedUntil: null,
          claimedBy: null,
          lastError,
        })
        .where("id = :id AND status = :pending AND claimedBy = :me", { id: delivery.id, pending: EmailDeliveryStatus.PENDING, me: this.workerId })
        .execute(),
    );
  }
}
