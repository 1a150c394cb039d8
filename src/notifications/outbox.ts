import type { EntityManager } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { EventBus } from "../kernel/events.js";
import type { NotificationEmails, Subjects } from "./email.js";
import type { NewNotification, OutboxPort, PreparedEmails as PreparedEmailsOf } from "../kernel/ports.js";
import { Notification } from "./notification.entity.js";

export type { NewNotification };

/** A notification's email recipients and subjects, found before the transaction that writes it. */
export type PreparedEmails = PreparedEmailsOf<Partial<Subjects>>;

/**
 * Writes notifications inside the caller's transaction, each with the email
 * deliveries it causes, and, after commit, tells every instance that there
 * is something new to deliver.
 */
export class Outbox implements OutboxPort<Notification> {
  constructor(
    private readonly clock: Clock,
    readonly bus: EventBus,
    /** null: notifications without emails (tests of the outbox alone). */
    private readonly emails: NotificationEmails | null = null,
  ) {}

  /** The email recipients `input` will have, read through `em` (committed data, before the transaction). */
  recipients(em: EntityManager, input: NewNotification): Promise<string[]> {
    return this.emails ? this.emails.recipients(em, input) : Promise.resolve([]);
  }

  /** One INSERT for the notification, one for its email deliveries (plus the reads of what `prepared` does not hold). */
  async insert(em: EntityManager, input: NewNotification, prepared?: PreparedEmails): Promise<Notification> {
    const row = em.create(Notification, {
      secondOrganizationId: null,
      audience: null,
      certificateKind: null,
      environment: null,
      certificateId: null,
      csrId: null,
      delegationId: null,
      officerId: null,
      kmsCertificateId: null,
      daysUntilExpiry: null,
      dedupeKey: null,
      ...input,
      occurredAt: this.clock.now(),
    });
    const saved = await em.save(Notification, row);
    // SQLite: a trigger sets position = id at insert (one writer: ids commit in order). PostgreSQL: the sequencer assigns it after commit.
    if (saved.position == null && em.connection.options.type !== "postgres") saved.position = saved.id;
    if (this.emails) {
      const recipients = prepared ? prepared.recipients : await this.emails.recipients(em, saved);
      if (recipients.length) await this.emails.write(em, saved, recipients, await this.emails.subjects(em, saved, prepared?.subjects));
    }
    return saved;
  }

  /** Called after commit, with the highest position committed (SQLite; on PostgreSQL the sequencer announces). */
  announce(upTo: number): void {
    void this.bus.publish("notifications.committed", { upTo });
  }
}
