import type { EntityManager } from "typeorm";
import { insertRows } from "../db/data-source.js";
import type { Clock } from "../kernel/clock.js";
import type { EventBus } from "../kernel/events.js";
import type { NotificationDraft, NotificationEmails, Subjects } from "./email.js";
import type { ComposedNotification, NewNotification, OutboxPort, PreparedEmails as PreparedEmailsOf } from "../kernel/ports.js";
import { Notification } from "./notification.entity.js";

export type { NewNotification };

/** A notification's email recipients and subjects, found before the transaction that writes it. */
export type PreparedEmails = PreparedEmailsOf<Partial<Subjects>>;

/** The row of `input`, every optional field null unless given. */
function draftOf(input: NewNotification, occurredAt: Date): NotificationDraft {
  return {
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
    occurredAt,
  };
}

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

  /**
   * One notification through the batch path: one INSERT for it, one for its
   * email deliveries, plus the reads of what `prepared` does not hold
   * (through `em`, so they see the caller's transaction).
   */
  async insert(em: EntityManager, input: NewNotification, prepared?: PreparedEmails): Promise<Notification> {
    const [saved] = await this.insertMany(em, await this.composeAll(em, [input], prepared));
    return saved!;
  }

  /**
   * The recipients, subjects and email text of every notification in
   * `inputs`, read through `em` (committed data, before the transaction) in a
   * few IN-list reads for all of them; the same emails `insert` would write.
   */
  compose(em: EntityManager, inputs: readonly NewNotification[]): Promise<ComposedNotification[]> {
    return this.composeAll(em, inputs);
  }

  /** compose, with what a caller found already for its one notification (`prepared`) not read again. */
  private async composeAll(em: EntityManager, inputs: readonly NewNotification[], prepared?: PreparedEmails): Promise<ComposedNotification[]> {
    const occurredAt = this.clock.now();
    const drafts = inputs.map((input) => draftOf(input, occurredAt));
    if (!this.emails || drafts.length === 0) return inputs.map((notification) => ({ notification, occurredAt, emails: null }));
    const emails = this.emails;
    const recipients = prepared ? drafts.map(() => prepared.recipients) : await emails.recipientsOfMany(em, drafts);
    const mailed = drafts.filter((_, i) => recipients[i]!.length > 0);
    const subjects = await emails.subjectsOfMany(em, mailed, prepared?.subjects);
    const subjectsOf = new Map(mailed.map((draft, i) => [draft, subjects[i]!]));
    return inputs.map((notification, i) => {
      const draft = drafts[i]!;
      const about = subjectsOf.get(draft);
      if (!about) return { notification, occurredAt, emails: null };
      const { subject, body } = emails.draft(draft, about);
      return { notification, occurredAt, emails: { recipients: recipients[i]!, subject, body } };
    });
  }

  /**
   * The notifications in multi-row INSERTs (their ids back through
   * RETURNING), then their email deliveries in multi-row INSERTs: a few
   * statements whatever the number. A dedupeKey taken already fails the
   * INSERT (unique index), and with it the transaction.
   */
  async insertMany(em: EntityManager, composed: readonly ComposedNotification[]): Promise<Notification[]> {
    if (composed.length === 0) return [];
    const rows = composed.map((c) => em.create(Notification, draftOf(c.notification, c.occurredAt)));
    const returned = await insertRows(em, Notification, rows, { returning: "id" });
    if (returned.length !== rows.length) throw new Error(`inserted ${rows.length} notifications but ${returned.length} ids came back`);
    // RETURNING promises no order, but ids are taken in the order rows are inserted (VALUES order, statement after
    // statement, from one sequence; on SQLite by the one writer): ascending, they are the ids of the rows as given.
    const ids = returned.map(Number).sort((a, b) => a - b);
    const postgres = em.connection.options.type === "postgres";
    rows.forEach((row, i) => {
      row.id = ids[i]!;
      // SQLite: the trigger set position = id (RETURNING shows the row as it was before AFTER triggers). PostgreSQL: the sequencer assigns it after commit.
      if (!postgres) row.position = row.id;
    });
    if (this.emails) {
      const mails = rows.flatMap((row, i) => {
        const emails = composed[i]!.emails;
        return emails && emails.recipients.length > 0
          ? [{ notificationId: row.id, recipients: emails.recipients, subject: emails.subject, body: emails.body(row.id) }]
          : [];
      });
      await this.emails.writeMany(em, mails);
    }
    return rows;
  }

  /** Called after commit, with the highest position committed (SQLite; on PostgreSQL the sequencer announces). */
  announce(upTo: number): void {
    void this.bus.publish("notifications.committed", { upTo });
  }
}
