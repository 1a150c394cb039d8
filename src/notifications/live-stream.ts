import type { NotificationType } from "../kernel/domain.js";
import type { Viewer } from "../viewer.js";
import type { Notification } from "./notification.entity.js";

/** What a stream needs from its dispatcher. */
export interface StreamHost {
  /** Visible history after the position, oldest first, with the viewer's current grants. */
  history(viewer: Viewer, afterPosition: number, types: readonly NotificationType[] | null, limit: number): Promise<Notification[]>;
  /** Token not revoked and officer active. */
  stillValid(viewer: Viewer): Promise<boolean>;
  /** Changes whenever a delegation is revoked: a history page read across a change is read again. */
  grantsEpoch(): number;
  detach(stream: NotificationStream): void;
}

export interface StreamLimits {
  /** History rows read per query while catching up. */
  pageSize: number;
  /** Rows waiting for a slow consumer; beyond this the stream stops queuing and catches up from the database later. */
  maxQueued: number;
  /** Live rows held while catching up; beyond this they are dropped and read from the database instead. */
  maxBuffered: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { pageSize: 200, maxQueued: 2000, maxBuffered: 5000 };

/** A FIFO with O(1) shift. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.head += 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
  toArray(): T[] {
    return this.items.slice(this.head);
  }
  replace(items: T[]): void {
    this.items = items;
    this.head = 0;
  }
}

/**
 * One subscriber's notifications, as an async iterator, in position order
 * with no gap and no duplicate.
 *
 * The dispatcher offers it every committed row it may see. A stream with a
 * cursor first registers (so live rows start arriving into `buffer`), then
 * reads the history after the cursor in pages, then drains the buffer,
 * skipping what it already sent. Positions become visible in increasing
 * order (docs/sequencer.md), so a row is either in a history page read after
 * its position was assigned or offered live after that page: nothing falls
 * between. The
 * same catch-up runs when a slow consumer lets too much queue up: the stream
 * stops queuing and reads the rest from the database when the consumer is
 * ready again.
 */
export class NotificationStream implements AsyncIterableIterator<Notification> {
  private lastQueued: number;
  private readonly queue = new Fifo<Notification>();
  private buffer: Notification[] = [];
  /** Live rows were dropped since the last history read began: read once more before going live. */
  private bufferDropped = false;
  private catchingUp = false;
  private ended = false;
  private failure: { error: unknown } | null = null;
  private pendingNext: { resolve(result: IteratorResult<Notification>): void; reject(error: unknown): void } | null = null;
  private roomWaiter: (() => void) | null = null;
  private readonly typeSet: ReadonlySet<NotificationType> | null;

  constructor(
    readonly viewer: Viewer,
    private readonly types: readonly NotificationType[] | null,
    private readonly after: number | null,
    private readonly host: StreamHost,
    private readonly limits: StreamLimits = DEFAULT_STREAM_LIMITS,
  ) {
    this.lastQueued = after ?? 0;
    this.typeSet = types ? new Set(types) : null;
  }

  /** Called by the dispatcher once the stream is registered, so that no live row is missed. */
  start(): void {
    if (this.after !== null) this.beginCatchUp();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Whether this subscriber asked for this type (visibility is the dispatcher's question). */
  wants(n: Notification): boolean {
    return !this.ended && (this.typeSet === null || this.typeSet.has(n.type));
  }

  /** Rows the dispatcher decided this viewer may see, ascending. */
  offer(rows: readonly Notification[]): void {
    for (const n of rows) {
      if (this.ended) return;
      if (!this.wants(n)) continue;
      if (this.catchingUp) {
        if (this.bufferDropped) continue;
        this.buffer.push(n);
        if (this.buffer.length > this.limits.maxBuffered) {
          this.buffer = [];
          this.bufferDropped = true;
        }
        continue;
      }
      if (n.position <= this.lastQueued) continue;
      if (this.queue.length >= this.limits.maxQueued) {
        // Slow consumer: stop holding rows in memory and read them from the database when it is ready.
        this.bufferDropped = true;
        this.beginCatchUp();
        continue;
      }
      this.enqueue(n);
    }
  }

  /** Rows queued or buffered but not yet taken by the consumer (for re-checking visibility). */
  pending(): Notification[] {
    return [...this.queue.toArray(), ...this.buffer];
  }

  /** Forgets rows that must no longer be delivered (a delegation was revoked). */
  drop(ids: ReadonlySet<number>): void {
    if (ids.size === 0) return;
    this.queue.replace(this.queue.toArray().filter((n) => !ids.has(n.id)));
    this.buffer = this.buffer.filter((n) => !ids.has(n.id));
  }

  /** Stops at once: queued rows are discarded and the consumer sees the end. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.replace([]);
    this.buffer = [];
    this.host.detach(this);
    this.wakeRoom();
    const waiting = this.pendingNext;
    this.pendingNext = null;
    waiting?.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<Notification>> {
    const n = this.queue.shift();
    if (n) {
      if (this.queue.length <= this.lowWater) this.wakeRoom();
      return Promise.resolve({ value: n, done: false });
    }
    if (this.failure) {
      const { error } = this.failure;
      this.failure = null;
      return Promise.reject(error);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    this.wakeRoom();
    return new Promise((resolve, reject) => {
      this.pendingNext = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Notification>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Notification> {
    return this;
  }

  private get lowWater(): number {
    return Math.floor(this.limits.maxQueued / 2);
  }

  private enqueue(n: Notification): void {
    this.lastQueued = n.position;
    const waiting = this.pendingNext;
    if (waiting) {
      this.pendingNext = null;
      waiting.resolve({ value: n, done: false });
    } else {
      this.queue.push(n);
    }
  }

  private wakeRoom(): void {
    const waiter = this.roomWaiter;
    this.roomWaiter = null;
    waiter?.();
  }

  private room(): Promise<void> {
    if (this.ended || this.queue.length <= this.lowWater) return Promise.resolve();
    return new Promise((resolve) => {
      this.roomWaiter = resolve;
    });
  }

  private fail(error: unknown): void {
    if (this.ended) return;
    const waiting = this.pendingNext;
    this.pendingNext = null;
    if (waiting) waiting.reject(error);
    else this.failure = { error };
    this.ended = true;
    this.queue.replace([]);
    this.buffer = [];
    this.host.detach(this);
  }

  private beginCatchUp(): void {
    if (this.catchingUp) return;
    this.catchingUp = true;
    void this.catchUp();
  }

  private async catchUp(): Promise<void> {
    try {
      for (;;) {
        await this.room();
        if (this.ended) return;
        if (!(await this.host.stillValid(this.viewer))) {
          this.end();
          return;
        }
        if (this.ended) return;
        this.bufferDropped = false;
        const epoch = this.host.grantsEpoch();
        const page = await this.host.history(this.viewer, this.lastQueued, this.types, this.limits.pageSize);
        if (this.ended) return;
        if (epoch !== this.host.grantsEpoch()) continue; // read with grants that changed meanwhile: read again
        for (const n of page) if (n.position > this.lastQueued) this.enqueue(n);
        if (page.length < this.limits.pageSize && !this.bufferDropped) break;
      }
      // Synchronously from here: every row not in the history read above is in the buffer or still to be offered.
      this.catchingUp = false;
      const buffered = this.buffer.sort((a, b) => a.position - b.position);
      this.buffer = [];
      for (const n of buffered) if (n.position > this.lastQueued) this.enqueue(n);
    } catch (error) {
      this.fail(error);
    }
  }
}
