import type { EntityManager } from "typeorm";
import type { NotificationType } from "./domain.js";

/**
 * What the unit of work needs from the rest of the house, stated here so the
 * kernel depends on no feature: db/ provides the transactions, audit/ the
 * audit log and idempotency keys, notifications/ the outbox. Each is a small
 * interface the concrete class satisfies as it is.
 */

/** A transaction in progress: its entity manager, and work to do once it has committed. */
export interface Tx {
  readonly em: EntityManager;
  afterCommit(hook: () => void): void;
}

/** Runs work in a transaction (db/data-source.ts's Database). */
export interface TransactionRunner {
  readonly isPostgres: boolean;
  /** For reads outside a transaction (a mutation's preparation): committed data only. */
  readonly manager: EntityManager;
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
}

/** One audit event as the unit of work writes it. */
export interface AuditRecord {
  actorId: string | null;
  organizationId: string | null;
  action: string;
  /** SUCCESS, or the refusal's error code. */
  outcome: string;
  targetType: string;
  targetId: string | null;
  /** Never tokens, keys or PINs. */
  details: Record<string, unknown>;
}

/** Appends audit events (audit/audit.service.ts's AuditLog). */
export interface AuditAppender {
  /** Inside the caller's transaction. */
  append(em: EntityManager, entry: AuditRecord): Promise<unknown>;
  /** In a transaction of its own (a refused attempt). */
  appendAlone(entry: AuditRecord): Promise<void>;
  /** Resolves once the events committed so far are in the chain (PostgreSQL's sequencer; at once on SQLite). */
  settle(): Promise<void>;
}

/** Moves committed, not yet chained audit events into the hash chain (audit/audit.service.ts's AuditLog; the sequencer calls it). */
export interface AuditChain {
  /** Inside a sequencer round: up to `limit` pending events, in the order taken. Returns how many it moved. */
  chainPending(em: EntityManager, limit: number): Promise<number>;
}

/** A notification to write with the change that caused it. */
export interface NewNotification {
  type: NotificationType;
  organizationId: string | null;
  secondOrganizationId?: string | null;
  audience?: string | null;
  certificateKind?: string | null;
  environment?: string | null;
  message: string;
  certificateId?: string | null;
  csrId?: string | null;
  delegationId?: string | null;
  officerId?: string | null;
  kmsCertificateId?: string | null;
  daysUntilExpiry?: number | null;
  dedupeKey?: string | null;
}

/**
 * A notification's email recipients and what it is about, found before the
 * transaction that writes it (notifications/email.ts says what `subjects` holds).
 */
export interface PreparedEmails<Subjects = object> {
  recipients: readonly string[];
  /** What the request loaded already; what is missing is loaded in the transaction. */
  subjects: Subjects;
}

/**
 * A notification made ready before the transaction that writes it: its time
 * and its emails, recipients and text, so that inside only the INSERTs are left.
 */
export interface ComposedNotification {
  readonly notification: NewNotification;
  readonly occurredAt: Date;
  /** null: nobody to mail. */
  readonly emails: ComposedEmails | null;
}

export interface ComposedEmails {
  readonly recipients: readonly string[];
  readonly subject: string;
  /** The body names the notification's row id, which exists only once the row is inserted. */
  body(notificationId: number): string;
}

/** Writes notifications in the transaction and announces them after commit (notifications/outbox.ts's Outbox). */
export interface OutboxPort<Saved extends { id: number; position?: number | null } = { id: number; position?: number | null }> {
  /** The notification, and the email deliveries it causes: to the prepared recipients, or those found through `em`. */
  insert(em: EntityManager, notification: NewNotification, prepared?: PreparedEmails): Promise<Saved>;
  /** The email recipients `notification` will have, read through `em`. */
  recipients(em: EntityManager, notification: NewNotification): Promise<string[]>;
  /** Composes many notifications at once, reading through `em` (committed data, before the transaction) a few statements in all. */
  compose(em: EntityManager, notifications: readonly NewNotification[]): Promise<ComposedNotification[]>;
  /** Writes composed notifications and their email deliveries in multi-row INSERTs; the saved rows in the order given. */
  insertMany(em: EntityManager, composed: readonly ComposedNotification[]): Promise<Saved[]>;
  announce(upTo: number): void;
}

/** What a request carrying an Idempotency-Key asks for: whose key, which key, and which request it was first used for. */
export interface IdempotentRequest {
  /** The officer whose key it is: keys of different officers never meet. */
  scope: string;
  key: string;
  /** SHA-256 of the operation and its variables. */
  fingerprint: string;
  /** How many mutations this request has run so far (a document may hold several). */
  seq: number;
}

/** Remembers what a keyed request's mutations answered (audit/idempotency.ts's IdempotencyKeys). */
export interface IdempotencyPort {
  /** The key of the request being handled, if it has one. */
  current(): IdempotentRequest | undefined;
  /** Two attempts under one key wait for each other here (PostgreSQL: a transaction-scoped lock; SQLite: one writer already). */
  lock(em: EntityManager, request: IdempotentRequest, seq: number): Promise<void>;
  find(em: EntityManager, request: IdempotentRequest, seq: number): Promise<{ found: false } | { found: true; result: unknown }>;
  record(em: EntityManager, request: IdempotentRequest, seq: number, action: string, result: unknown): Promise<void>;
  purgeSoon(): void;
}

/** Who acts, as far as the audit needs to know (a Viewer). */
export interface Actor {
  readonly officer: { readonly id: string };
}
