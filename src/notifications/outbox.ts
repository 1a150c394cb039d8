import type { EntityManager } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { EventBus } from "../kernel/events.js";
import type { NewNotification, OutboxPort } from "../kernel/ports.js";
import { Notification } from "./notification.entity.js";

export type { NewNotification };

/** Listeners that add work to the same transaction as a notification (email rows, for one). */
export type OutboxListener = (em: EntityManager, notification: Notification) => Promise<void>;

/**
 * Writes notifications inside the caller's transaction and, after commit,
 * tells every instance that there is something new to deliver.
 */
export class Outbox implements OutboxPort<Notification> {
  private readonly listeners: OutboxListener[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly bus: EventBus,
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
    for (const listener of this.listeners) await listener(em, saved);
    return saved;
  }

  /** Called after commit. */
  announce(upTo: number): void {
    void this.bus.publish("notifications.committed", { upTo });
  }
}
