import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { EVENT_TOPICS, type EventBus, type EventPayload, type EventTopic } from "../kernel/events.js";
import { REPEAT_LOG_MS } from "../health.js";

/** Handlers are filed by topic; each is only ever called with its own topic's payload. */
type Handler = (payload: EventPayload) => void;

interface Envelope {
  /** The instance that published: it has already delivered to its own handlers. */
  origin: string;
  payload: EventPayload;
  /** Present when the publisher waits for every instance to confirm: each answers on the origin's ack channel. */
  ack?: string;
}

/** How long a confirmed publish waits for the other instances' acknowledgements. */
export const CONFIRM_TIMEOUT_MS = 2000;

/** How often each connection is PINGed, and how long an answer may take before the connection counts as dead. */
const HEARTBEAT_MS = 5000;
const HEARTBEAT_TIMEOUT_MS = 3000;

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
  /**
   * Every channel this instance listens on, and what to call once Redis has
   * first confirmed it. The bus subscribes them itself on every connection
   * that becomes ready (ioredis's own resubscribe only knows channels whose
   * SUBSCRIBE was answered, and drops one written during a handshake that
   * then failed).
   */
  private readonly channels = new Map<string, { confirmed: boolean; confirm: () => void }>();
  private readonly origin = randomUUID();
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  /** Since when Redis has been unreachable (monotonic ms), or null while it is up. */
  private downSince: number | null = null;
  private lastDownLog = 0;
  private readonly unanswered = new Set<Redis>();
  private suppressed = 0;
  /** Confirmed publishes waiting for acknowledgements: how many came, how many are expected (once PUBLISH said), and what to call then. */
  private readonly awaitingAcks = new Map<string, { received: number; expected: number | null; done: () => void }>();
  private readonly acksSubscribed: Promise<void>;

  constructor(
    url: string,
    private readonly options: { channelPrefix?: string; logger: Logger },
  ) {
    const common = { lazyConnect: false, enableReadyCheck: true, connectTimeout: 5000, keepAlive: 10_000 } as const;
    // Publishing is a signal, never worth waiting for: while Redis is away it fails at once instead of queueing.
    this.publisher = new Redis(url, { ...common, connectionName: "keyportal-publish", enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    // SUBSCRIBE waits for Redis however long it is away (a failed one would never be re-subscribed on reconnect).
    this.subscriber = new Redis(url, { ...common, connectionName: "keyportal-subscribe", maxRetriesPerRequest: null, autoResubscribe: false });
    for (const connection of [this.publisher, this.subscriber]) {
      // ioredis reconnects by itself (and re-subscribes); without a listener an error would crash the process.
      connection.on("error", (error: Error) => this.wentAway(error.message));
      connection.on("close", () => this.wentAway("connection closed"));
      connection.on("ready", () => this.cameBack());
    }
    this.subscriber.on("message", (channel: string, message: string) => this.receive(channel, message));
    this.subscriber.on("ready", () => this.subscribeAll());
    this.acksSubscribed = this.listen(this.ackChannel);
    // A silent Redis (a partition) keeps its sockets open: a PING that gets no answer drops them, and ioredis reconnects.
    this.heartbeat = setInterval(() => void this.probe(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Both connections up (for /readyz and /metrics). */
  connected(): boolean {
    return this.publisher.status === "ready" && this.subscriber.status === "ready";
  }

  private async probe(): Promise<void> {
    for (const connection of [this.publisher, this.subscriber]) {
      if (connection.status === "connect") {
        // Connected but its ready check never answered (a silent peer): seen twice in a row, start over.
        if (this.unanswered.has(connection)) {
          this.unanswered.delete(connection);
          connection.disconnect(true);
        } else this.unanswered.add(connection);
        continue;
      }
      this.unanswered.delete(connection);
      if (connection.status !== "ready") continue;
      let timer: NodeJS.Timeout | undefined;
      const silent = new Promise<"silent">((resolve) => {
        timer = setTimeout(() => resolve("silent"), HEARTBEAT_TIMEOUT_MS);
        timer.unref();
      });
      const answer = await Promise.race([connection.ping().catch(() => "failed"), silent]);
      clearTimeout(timer);
      if (answer === "silent" && !this.closed) {
        this.wentAway(`no answer to PING within ${HEARTBEAT_TIMEOUT_MS} ms`);
        connection.disconnect(true);
      }
    }
  }

  /**
   * One line when Redis goes (saying what that means), at most one a minute
   * while it stays away, one when it is back: not one per reconnect attempt.
   */
  private wentAway(reason: string): void {
    if (this.closed) return;
    const now = performance.now();
    if (this.downSince === null) {
      this.downSince = now;
      this.lastDownLog = now;
      this.suppressed = 0;
      this.options.logger.warn(
        { reason },
        "redis is unreachable: events between instances now arrive by each instance's poll of the database (every few seconds); retrying",
      );
      return;
    }
    if (now - this.lastDownLog >= REPEAT_LOG_MS) {
      this.lastDownLog = now;
      this.options.logger.warn(
        { reason, downForSeconds: Math.round((now - this.downSince) / 1000), errorsSinceLastLine: this.suppressed },
        "redis is still unreachable; delivery keeps polling",
      );
      this.suppressed = 0;
      return;
    }
    this.suppressed += 1;
  }

  private cameBack(): void {
    if (this.downSince === null || !this.connected()) return;
    const downForMs = Math.round(performance.now() - this.downSince);
    this.downSince = null;
    this.options.logger.info({ downForMs }, "redis is reachable again: events between instances are live again");
  }

  channel(topic: EventTopic): string {
    return `${this.options.channelPrefix ?? "keyportal"}:${topic}`;
  }

  /** Where the other instances acknowledge the confirmed publishes of the instance `origin`. */
  private ackChannelOf(origin: string): string {
    return `${this.options.channelPrefix ?? "keyportal"}:ack:${origin}`;
  }

  private get ackChannel(): string {
    return this.ackChannelOf(this.origin);
  }

  async publish<T extends EventTopic>(topic: T, payload: EventPayload<T>, options: { confirm?: boolean } = {}): Promise<void> {
    this.deliver(topic, payload);
    if (this.closed) return;
    const ack = options.confirm ? randomUUID() : undefined;
    const envelope: Envelope = { origin: this.origin, payload, ...(ack ? { ack } : {}) };
    let acknowledged: Promise<void> | null = null;
    try {
      if (ack) {
        // Registered before the PUBLISH, whose answer (how many received it) may come after the fastest acknowledgements.
        acknowledged = new Promise((done) => this.awaitingAcks.set(ack, { received: 0, expected: null, done }));
      }
      const receivers = await this.publisher.publish(this.channel(topic), JSON.stringify(envelope));
      const waiting = ack ? this.awaitingAcks.get(ack) : undefined;
      if (!acknowledged || !waiting) return;
      // Every subscriber of the channel got it; this instance's own subscriber (when it has one) ignores its own.
      waiting.expected = receivers - (this.subscribing.has(topic) ? 1 : 0);
      if (waiting.received >= waiting.expected) waiting.done();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), CONFIRM_TIMEOUT_MS);
        timer.unref();
      });
      const outcome = await Promise.race([acknowledged.then(() => "confirmed" as const), late]);
      clearTimeout(timer);
      if (outcome === "late") {
        this.options.logger.warn(
          { topic, expected: waiting.expected, confirmed: waiting.received, timeoutMs: CONFIRM_TIMEOUT_MS },
          "not every subscriber confirmed a signal in time; answering anyway",
        );
      }
    } catch (error) {
      // Other instances learn of it from their poll; logged with the outage, not per publish.
      this.wentAway((error as Error).message);
    } finally {
      if (ack) this.awaitingAcks.delete(ack);
    }
  }

  subscribe<T extends EventTopic>(topic: T, typed: (payload: EventPayload<T>) => void): () => void {
    const handler = typed as Handler;
    let set = this.handlers.get(topic);
    if (!set) {
      set = new Set();
      this.handlers.set(topic, set);
    }
    set.add(handler);
    if (!this.subscribing.has(topic)) this.subscribing.set(topic, this.listen(this.channel(topic)));
    return () => {
      set.delete(handler);
    };
  }

  /**
   * Adds a channel to those this instance listens on; resolves once Redis has
   * confirmed it. Sent now when a connection is ready, otherwise by
   * subscribeAll when one becomes ready; never from ioredis's offline queue.
   */
  private listen(channel: string): Promise<void> {
    return new Promise<void>((confirm) => {
      this.channels.set(channel, { confirmed: false, confirm });
      if (this.subscriber.status === "ready") this.sendSubscribe([channel]);
    });
  }

  /** On every connection that becomes ready: one SUBSCRIBE of every channel (SUBSCRIBE of one already subscribed is a no-op in Redis). */
  private subscribeAll(): void {
    if (this.closed || this.channels.size === 0) return;
    this.sendSubscribe([...this.channels.keys()]);
  }

  private sendSubscribe(channels: string[]): void {
    this.subscriber.subscribe(...channels).then(
      () => {
        for (const channel of channels) {
          const state = this.channels.get(channel);
          if (state && !state.confirmed) {
            state.confirmed = true;
            state.confirm();
          }
        }
      },
      // The connection went away under it: said once per outage, and sent again on the next ready connection.
      (error: unknown) => this.wentAway((error as Error).message),
    );
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
    const outcome = await Promise.race([Promise.all([...this.subscribing.values(), this.acksSubscribed]).then(() => "ready" as const), timedOut]);
    clearTimeout(timer);
    // Already said when Redis is known to be away (one line per outage, not two).
    if (outcome === "timeout" && this.downSince === null) this.options.logger.warn({ timeoutMs }, "redis did not confirm the subscriptions in time; continuing");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.handlers.clear();
    // QUIT politely, but never wait on a Redis that does not answer.
    await Promise.all(
      [this.subscriber, this.publisher].map(async (c) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<"late">((resolve) => {
          timer = setTimeout(() => resolve("late"), 1000);
          timer.unref();
        });
        const outcome = await Promise.race([c.quit().catch(() => "failed"), late]);
        clearTimeout(timer);
        if (outcome !== "OK") c.disconnect();
      }),
    );
  }

  private receive(channel: string, message: string): void {
    if (channel === this.ackChannel) {
      this.acknowledged(message);
      return;
    }
    const topic = EVENT_TOPICS.find((t) => this.channel(t) === channel);
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
    // Handled here (the handlers ran above): tell the publisher, which answers its caller once every instance has.
    if (typeof envelope.ack === "string" && typeof envelope.origin === "string") {
      this.publisher.publish(this.ackChannelOf(envelope.origin), JSON.stringify({ ack: envelope.ack })).catch((error: unknown) => this.wentAway((error as Error).message));
    }
  }

  private acknowledged(message: string): void {
    let ack: unknown;
    try {
      ack = (JSON.parse(message) as { ack?: unknown }).ack;
    } catch {
      return;
    }
    const waiting = typeof ack === "string" ? this.awaitingAcks.get(ack) : undefined;
    if (!waiting) return;
    waiting.received += 1;
    if (waiting.expected !== null && waiting.received >= waiting.expected) waiting.done();
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
