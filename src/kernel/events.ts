import { EventEmitter } from "node:events";

/**
 * Signals between instances: "notifications were committed", "this token or
 * officer lost access". Payloads are small JSON objects; the data itself is
 * always read from the database. In-process by default; Redis when several
 * instances run (notifications/redis-event-bus.ts).
 */
export interface EventBus {
  /**
   * Handlers on this instance run at once. With `confirm`, resolves only once
   * every other instance subscribed to the topic has run its handlers (Redis:
   * each acknowledges; after a bounded wait an instance that did not is
   * logged), so that "revoked" is true everywhere when the caller answers.
   * Never throws: an outage is logged and the signal is lost (the data is in
   * the database).
   */
  publish<T extends EventTopic>(topic: T, payload: EventPayload<T>, options?: { confirm?: boolean }): Promise<void>;
  subscribe<T extends EventTopic>(topic: T, handler: (payload: EventPayload<T>) => void): () => void;
  /** Resolves once subscriptions made so far receive events from other instances (Redis); absent when immediate. */
  ready?(): Promise<void>;
  /** Redis: whether both connections are up right now; absent for the in-process bus. */
  connected?(): boolean;
  close(): Promise<void>;
}

/** Exactly one of: a token, an officer or a delegation lost access. */
export type AccessRevoked =
  | { tokenId: string; officerId?: undefined; delegationId?: undefined }
  | { officerId: string; tokenId?: undefined; delegationId?: undefined }
  | { delegationId: string; tokenId?: undefined; officerId?: undefined };

/** Each topic's payload. */
export interface EventMap {
  /** Notifications were committed, up to this position (the highest now visible). */
  "notifications.committed": { upTo: number };
  "access.revoked": AccessRevoked;
}

export type EventTopic = keyof EventMap;
export const EVENT_TOPICS: readonly EventTopic[] = ["notifications.committed", "access.revoked"];

export type EventPayload<T extends EventTopic = EventTopic> = EventMap[T];

export class InProcessEventBus implements EventBus {
  private readonly emitter = new EventEmitter();
  constructor() {
    this.emitter.setMaxListeners(0);
  }
  async publish<T extends EventTopic>(topic: T, payload: EventPayload<T>): Promise<void> {
    this.emitter.emit(topic, payload);
  }
  subscribe<T extends EventTopic>(topic: T, handler: (payload: EventPayload<T>) => void): () => void {
    this.emitter.on(topic, handler);
    return () => this.emitter.off(topic, handler);
  }
  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}
