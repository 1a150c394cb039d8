import type { Logger } from "pino";
import type { EventBus, EventPayload } from "../kernel/events.js";
import type { Lifecycle } from "../kernel/lifecycle.js";
import { WorkerHealth, type WorkerState } from "../health.js";
import { integerCursor } from "../graphql/pagination.js";
import type { AccessPolicy, DelegationGrant } from "../policy.js";
import type { Viewer } from "../viewer.js";
import type { NotificationFeed, NotificationFeedOptions } from "./feed.js";
import type { Notification } from "./notification.entity.js";
import type { NotificationStore } from "./notification.store.js";
import { DEFAULT_STREAM_LIMITS, NotificationStream, type StreamHost, type StreamLimits } from "./live-stream.js";
import type { NotificationRefs } from "./refs.js";

export interface DispatcherOptions {
  /** Rows read per query. */
  batchSize?: number;
  /** Safety net if a "committed" signal is lost (Redis restarting): look for new rows this often. */
  pollIntervalMs?: number;
  limits?: Partial<StreamLimits>;
  /** A pump running longer than this is reported stalled, and the next signal starts a fresh one. */
  deadlineMs?: number;
}

/**
 * One per instance. On "notifications.committed" (from this instance or,
 * through Redis, from any other) it reads the rows after its high-water
 * mark in position order and offers each live subscription of this instance the
 * rows its viewer may see. Subscribers whose token was revoked or whose
 * officer was deactivated are ended, both on "access.revoked" and by a check
 * before every delivery.
 */
export class NotificationDispatcher implements NotificationFeed {
  private highWater = 0;
  private readonly streams = new Set<NotificationStream>();
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  private epoch = 0;
  private lifecycle: Lifecycle = "created";
  private unsubscribes: Array<() => void> = [];
  private pollTimer: NodeJS.Timeout | null = null;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly limits: StreamLimits;
  private readonly host: StreamHost;
  private readonly health: WorkerHealth;
  private pumpRun = 0;

  constructor(
    private readonly deps: {
      store: NotificationStore;
      policy: AccessPolicy;
      refs: Pick<NotificationRefs, "validTokenIds">;
      bus: EventBus;
      logger: Logger;
    },
    options: DispatcherOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 500;
    this.pollIntervalMs = options.pollIntervalMs ?? 5000;
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...options.limits };
    this.health = new WorkerHealth("notification dispatcher", deps.logger, options.deadlineMs ?? 60_000);
    this.host = {
      history: async (viewer, afterId, types, limit) =>
        this.deps.store.visibleAfter(await this.deps.policy.notificationScope(viewer), afterId, types, limit),
      stillValid: async (viewer) => (await this.deps.refs.validTokenIds([viewer])).has(viewer.tokenId),
      grantsEpoch: () => this.epoch,
      detach: (stream) => {
        this.streams.delete(stream);
      },
    };
  }

  /** Live subscriptions on this instance. */
  get subscriberCount(): number {
    return this.streams.size;
  }

  async start(): Promise<void> {
    if (this.lifecycle !== "created") return;
    this.lifecycle = "starting";
    this.highWater = await this.deps.store.maxId();
    this.unsubscribes = [
      this.deps.bus.subscribe("notifications.committed", (event) => this.kick(event.upTo)),
      this.deps.bus.subscribe("access.revoked", (event) => this.onAccessRevoked(event)),
    ];
    this.pollTimer = setInterval(() => this.kick(), this.pollIntervalMs);
    this.pollTimer.unref();
    // Stopped while it was starting: it stays stopped.
    if (this.lifecycle === "starting") this.lifecycle = "running";
  }

  async stop(): Promise<void> {
    this.lifecycle = "stopped";
    if (this.pollTimer) clearInterval(this.pollTimer);
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    this.unsubscribes = [];
    for (const stream of [...this.streams]) stream.end();
    await this.pumping;
  }

  /** Subscription.notifications: replay after the cursor (if any), then live. */
  open(viewer: Viewer, options: NotificationFeedOptions): NotificationStream {
    if (this.lifecycle !== "running") throw new Error("the notification dispatcher is not running");
    const stream = new NotificationStream(viewer, options.types, options.after, this.host, this.limits);
    this.streams.add(stream);
    stream.start();
    return stream;
  }

  /** Parses a client's cursor (a decimal position, published as the notification id). */
  static cursor(after: string | null | undefined): number | null {
    return after == null || after === "" ? null : integerCursor(after);
  }

  /** Look for committed rows now. `upTo`: the highest position the signal announced, when known. */
  kick(upTo?: number): void {
    if (this.lifecycle !== "running") return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    if (upTo !== undefined && upTo <= this.highWater) return;
    // Failures and stalls are logged by the worker health (once, then at most once a minute); the next signal or poll retries.
    this.pumping = this.health.round(() => this.pump()).catch(() => undefined).finally(() => {
      this.pumping = null;
      if (this.pumpAgain) {
        this.pumpAgain = false;
        this.kick();
      }
    });
  }

  /** Resolves once everything committed so far has been offered to the subscribers (tests, shutdown). */
  async settle(): Promise<void> {
    this.kick();
    while (this.pumping) await this.pumping;
  }

  /** Offers the rows after the high-water mark; a pump abandoned as stalled stops at its next step, so two never interleave. */
  private async pump(): Promise<void> {
    const run = ++this.pumpRun;
    for (;;) {
      const rows = await this.deps.store.after(this.highWater, this.batchSize);
      if (run !== this.pumpRun || rows.length === 0) return;
      await this.fanOut(rows, () => run === this.pumpRun);
      if (run !== this.pumpRun) return;
      this.highWater = rows[rows.length - 1]!.position;
      if (rows.length < this.batchSize) return;
    }
  }

  /** Health of the pump (readiness, metrics). */
  get state(): WorkerState {
    return this.health.state;
  }

  private async fanOut(rows: readonly Notification[], current: () => boolean = () => true): Promise<void> {
    const { policy } = this.deps;
    for (;;) {
      if (this.streams.size === 0) return;
      const epoch = this.epoch;
      // Grants are read fresh for every batch (one query per MSP organization), never cached across batches.
      const grantsByOrganization = new Map<string, Promise<DelegationGrant[]>>();
      const grantsOf = (viewer: Viewer) => {
        let grants = grantsByOrganization.get(viewer.organization.id);
        if (!grants) {
          grants = policy.grantsOf(viewer);
          grantsByOrganization.set(viewer.organization.id, grants);
        }
        return grants;
      };
      const deliveries = new Map<NotificationStream, Notification[]>();
      for (const stream of this.streams) {
        const picked: Notification[] = [];
        for (const n of rows) {
          if (!stream.wants(n)) continue;
          if (policy.seesNotificationDirectly(stream.viewer, n)) picked.push(n);
          else if (policy.mightSeeNotificationByDelegation(stream.viewer, n)) {
            if (await policy.canSeeNotification(stream.viewer, n, await grantsOf(stream.viewer))) picked.push(n);
          }
        }
        if (picked.length > 0) deliveries.set(stream, picked);
      }
      if (deliveries.size === 0) return;
      const valid = await this.deps.refs.validTokenIds([...deliveries.keys()].map((s) => s.viewer));
      if (!current()) return; // this pump was abandoned as stalled; a newer one delivers
      if (epoch !== this.epoch) continue; // a delegation was revoked while deciding: decide again
      for (const [stream, picked] of deliveries) {
        if (!valid.has(stream.viewer.tokenId)) stream.end();
        else stream.offer(picked);
      }
      return;
    }
  }

  private onAccessRevoked(event: EventPayload<"access.revoked">): void {
    if (event.tokenId || event.officerId) {
      for (const stream of [...this.streams]) {
        const v = stream.viewer;
        if ((event.tokenId && v.tokenId === event.tokenId) || (event.officerId && v.officer.id === event.officerId)) stream.end();
      }
    }
    if (event.delegationId) {
      this.epoch += 1;
      void this.recheckDelegatedRows().catch((error: unknown) =>
        this.deps.logger.error({ err: error }, "could not re-check subscriptions after a delegation was revoked"),
      );
    }
  }

  /** A delegation was revoked: rows queued for MSP subscribers under it must not reach them. */
  private async recheckDelegatedRows(): Promise<void> {
    const { policy } = this.deps;
    const grantsByOrganization = new Map<string, DelegationGrant[]>();
    for (const stream of [...this.streams]) {
      const candidates = stream.pending().filter((n) => !policy.seesNotificationDirectly(stream.viewer, n));
      if (candidates.length === 0) continue;
      const orgId = stream.viewer.organization.id;
      let grants = grantsByOrganization.get(orgId);
      if (!grants) {
        grants = await policy.grantsOf(stream.viewer);
        grantsByOrganization.set(orgId, grants);
      }
      const hidden = new Set<number>();
      for (const n of candidates) if (!(await policy.canSeeNotification(stream.viewer, n, grants))) hidden.add(n.id);
      stream.drop(hidden);
    }
  }
}
