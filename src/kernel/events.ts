import { EventEmitter } from "node:events";

/**
 * Signals between instances: "notifications were committed", "this token or
 * officer lost access". Payloads are small JSON objects; the data itself is
 * always read from the database. In-process by default; Redis when several
 * instances run (notifications/redis-event-bus.ts).
 */
export interface EventBus {
  publish(topic: EventTopic, payload: EventPayload): Promise<void>;
  subscribe(topic: EventTopic, handler: (payload: EventPayload) => void): () => void;
  /** Resolves once subscriptions made so far receive events from other instances (Redis); absent when immediate. */
  ready?(): Promise<void>;
  /** Redis: whether both connections are up right now; absent for the in-process bus. */
  connected?(): boolean;
  close(): Promise<void>;
}

export type EventTopic = "notifications.committed" | "access.revoked";

export interface EventPayload {
  /** access.revoked: the token, officer or delegation that lost access. */
  tokenId?: string;
  officerId?: string;
  delegationId?: string;
  /** notifications.committed: highest position now visible. */
  upTo?: number;
}

export class InProcessEventBus implements EventBus {
  private readonly emitter = new EventEmitter();
  constructor() {
    this.emitter.setMaxListeners(0);
  }
  async publish(topic: EventTopic, payload: EventPayload): Promise<void> {
    this.emitter.emit(topic, payload);
  }
  subscribe(topic: EventTopic, handler: (payload: EventPayload) => void): () => void {
    this.emitter.on(topic, handler);
    return () => this.emitter.off(topic, handler);
  }
  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}
