import type { Clock } from "../kernel/clock.js";
import type { EventBus, EventPayload } from "../kernel/events.js";
import type { Viewer } from "../viewer.js";

/** How many tokens are kept, and how long one is trusted without reading the database again (a backstop: invalidation is by event). */
export const TOKEN_CACHE_SIZE = 10_000;
export const TOKEN_CACHE_TTL_MS = 30_000;

interface Entry {
  viewer: Viewer;
  /** The token row's lastUsedAt when it was read (OfficerService writes it at most once a minute). */
  lastUsedAt: Date | null;
  cachedAt: number;
}

/**
 * Resolved bearer tokens, keyed by token hash (the token itself is never
 * kept): a bounded LRU with a short TTL, emptied of a token or an officer by
 * "access.revoked" on the bus, from this instance or another.
 *
 * What a cached Viewer holds, and why it may be reused:
 * - the token (id, expiresAt): revocation publishes access.revoked {tokenId};
 *   expiresAt is checked against the clock on every hit, so an expired token
 *   is never served.
 * - the officer (status, role, name, email): deactivation publishes
 *   access.revoked {officerId}; the role never changes; name and email do not
 *   change after registration; enrolledAt is set before the officer can hold
 *   a token.
 * - the organization (id, kind, name): never updated once created.
 * - no delegations: grants are read from the database on every check
 *   (delegations/delegation.grants.ts), so approvals and revocations take
 *   effect on the next request without touching this cache; a delegation
 *   event still empties it, which costs one read per active token.
 * Anything that becomes mutable later must publish access.revoked or be read
 * per request.
 *
 * Signals between instances travel by the bus: while it is disconnected the
 * cache is bypassed and emptied (a signal may have been missed), and an
 * instance whose bus reaches no other instance must not use one (app.ts).
 */
export class TokenCache {
  private readonly entries = new Map<string, Entry>();
  private readonly unsubscribe: () => void;
  hits = 0;
  misses = 0;
  /** Counts revocations and clears: a viewer read before the latest one is not kept. */
  private revocations = 0;

  constructor(
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly options: { size: number; ttlMs: number } = { size: TOKEN_CACHE_SIZE, ttlMs: TOKEN_CACHE_TTL_MS },
  ) {
    this.unsubscribe = bus.subscribe("access.revoked", (event) => this.onAccessRevoked(event));
  }

  /** Pass to set() what this was before reading the database. */
  get generation(): number {
    return this.revocations;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether the cache may be used now: not while the bus between instances is down. */
  usable(): boolean {
    if (this.bus.connected && !this.bus.connected()) {
      this.clear();
      return false;
    }
    return true;
  }

  get(tokenHash: string): { viewer: Viewer; lastUsedAt: Date | null } | undefined {
    const entry = this.entries.get(tokenHash);
    if (!entry) {
      this.misses += 1;
      return undefined;
    }
    const now = this.clock.now().getTime();
    const age = now - entry.cachedAt;
    const expiresAt = entry.viewer.tokenExpiresAt;
    if (age < 0 || age >= this.options.ttlMs || (expiresAt != null && expiresAt.getTime() <= now)) {
      this.entries.delete(tokenHash);
      this.misses += 1;
      return undefined;
    }
    // Most recently used last: the first key is the one to drop.
    this.entries.delete(tokenHash);
    this.entries.set(tokenHash, entry);
    this.hits += 1;
    return { viewer: entry.viewer, lastUsedAt: entry.lastUsedAt };
  }

  set(tokenHash: string, viewer: Viewer, lastUsedAt: Date | null, generation: number): void {
    if (generation !== this.revocations) return;
    this.entries.delete(tokenHash);
    this.entries.set(tokenHash, { viewer, lastUsedAt, cachedAt: this.clock.now().getTime() });
    while (this.entries.size > this.options.size) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  clear(): void {
    this.revocations += 1;
    this.entries.clear();
  }

  close(): void {
    this.unsubscribe();
    this.entries.clear();
  }

  private onAccessRevoked(event: EventPayload<"access.revoked">): void {
    this.revocations += 1;
    if (event.delegationId) {
      this.entries.clear();
      return;
    }
    for (const [hash, entry] of this.entries) {
      if ((event.tokenId && entry.viewer.tokenId === event.tokenId) || (event.officerId && entry.viewer.officer.id === event.officerId)) {
        this.entries.delete(hash);
      }
    }
  }
}
