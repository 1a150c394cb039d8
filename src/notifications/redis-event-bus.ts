import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import type { EventBus, EventPayload, EventTopic } from "../events.js";

type Handler = (payload: EventPayload) => void;

interface Envelope {
  /** The instance that published: it has already delivered to its own handlers. */
  origin: string;
  payload: EventPayload;
}

const TOPICS: readonly EventTopic[] = ["notifications.committed", "access.revoked"];

/**
 * EventBus over Redis pub/sub, for several instances: channel
 * "<prefix>:<topic>" (prefix "keyportal" unless configured), one connection
 * to publish and a separate one to subscribe (a subscribed Redis connection
 * can do nothing else). Handlers on this instance are called at once,
 * whatever Redis does; other instances hear it through Redis. Signals only:
 * a lost one delays delivery until the next (the dispatcher also polls), it
 * never loses data, which is always read from the database.
 */
export class RedisEventBus implements EventBus {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly handlers = new Map<EventTopic, Set<Handler>>();
  private readonly subscribing = new Map<EventTopic, Promise<void>>();
  private readonly origin = randomUUID();
  private closed = false;

  constructor(
    url: string,
    private readonly options: { channelPrefix?: string; logger: Logger },
  ) {
    const common = { lazyConnect: false, enableReadyCheck: true } as const;
    this.publisher = new Redis(url, { ...common, connectionName: "keyportal-publish" });
    this.subscriber = new Redis(url, { ...common, connectionName: "keyportal-subscribe" });
    for (const connection of [this.publisher, this.subscriber]) {
      // ioredis reconnects by itself (and re-subscribes); without a listener an error would crash the process.
      connection.on("error", (error: Error) => this.options.logger.warn({ err: { message: error.message } }, "redis connection error"));
    }
    this.subscriber.on("message", (channel: string, message: string) => this.receive(channel, message));
  }

  channel(topic: EventTopic): string {
    return `${this.options.channelPrefix ?? "keyportal"}:${topic}`;
  }

  async publish(topic: EventTopic, payload: EventPayload): Promise<void> {
    this.deliver(topic, payload);
    if (this.closed) return;
    const envelope: Envelope = { origin: this.origin, payload };
    try {
      await this.publisher.publish(this.channel(topic), JSON.stringify(envelope));
    } catch (error) {
      this.options.logger.warn({ err: { message: (error as Error).message }, topic }, "could not publish to redis");
    }
  }

  subscribe(topic: EventTopic, handler: Handler): () => void {
    let set = this.handlers.get(topic);
    if (!set) {
      set = new Set();
      this.handlers.set(topic, set);
    }
    set.add(handler);
    if (!this.subscribing.has(topic)) {
      this.subscribing.set(
        topic,
        this.subscriber.subscribe(this.channel(topic)).then(
          () => undefined,
          (error: unknown) => this.options.logger.error({ err: { message: (error as Error).message }, topic }, "could not subscribe to redis"),
        ),
      );
    }
    return () => {
      set.delete(handler);
    };
  }

  /**
   * Resolves once the channels subscribed so far are confirmed by Redis, or
   * after timeoutMs: an instance that starts while Redis is away still serves,
   * and hears other instances' commits through the dispatcher's poll until
   * ioredis has reconnected and re-subscribed.
   */
  async ready(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
      timer.unref();
    });
    const outcome = await Promise.race([Promise.all(this.subscribing.values()).then(() => "ready" as const), timedOut]);
    clearTimeout(timer);
    if (outcome === "timeout") this.options.logger.warn({ timeoutMs }, "redis did not confirm the subscriptions in time; continuing");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handlers.clear();
    await Promise.all(
      [this.subscriber, this.publisher].map((c) =>
        c.quit().then(
          () => undefined,
          () => c.disconnect(),
        ),
      ),
    );
  }

  private receive(channel: string, message: string): void {
    const topic = TOPICS.find((t) => this.channel(t) === channel);
    if (!topic) return;
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch {
      this.options.logger.warn({ channel }, "ignoring a malformed message on a KeyPortal channel");
      return;
    }
    if (envelope.origin === this.origin || typeof envelope.payload !== "object" || envelope.payload === null) return;
    this.deliver(topic, envelope.payload);
  }

  private deliver(topic: EventTopic, payload: EventPayload): void {
    for (const handler of [...(this.handlers.get(topic) ?? [])]) {
      try {
        handler(payload);
      } catch (error) {
        this.options.logger.error({ err: error, topic }, "event handler failed");
      }
    }
  }
}
