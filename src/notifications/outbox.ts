import type { EntityManager } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { NotificationType } from "../kernel/domain.js";
import type { EventBus } from "../kernel/events.js";
import { Notification } from "./notification.entity.js";

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

/** Listeners that add work to the same transaction as a notification (email rows, for one). */
export type OutboxListener = (em: EntityManager, notification: Notification) => Promise<void>;

/**
 * Writes notifications inside the caller's transaction and, after commit,
 * tells every instance that there is something new to deliver.
 */
export class Outbox {
  private readonly listeners: OutboxListener[] = [];

  constructor(
    private readonly clock: Clock,
    readonly bus: EventBus,
  ) {}

  onInsert(listener: OutboxListener): void {
    this.listeners.push(listener);
  }

  async insert(em: EntityManager, input: NewNotification): Promise<Notification> {
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
    for (const listener of this.listeners) await listener(em, saved);
    return saved;
  }

  /** Called after commit, with the highest position committed (SQLite; on PostgreSQL the sequencer announces). */
  announce(upTo: number): void {
    void this.bus.publish("notifications.committed", { upTo });
  }
}
