/**
 * Quotas: every rate and concurrency limit of the server, in one place.
 *
 * Two primitives, each keyed by a string:
 * - `take(key, cost, rate)`: a token bucket (refills `perSecond`, holds at most
 *   `burst`); answers allowed, or the seconds until `cost` would be allowed.
 * - `acquire(key, weight, limit)`: a weighted count of things held at once
 *   (sockets, subscriptions); answers a lease to release, or a refusal.
 * In process by default; with REDIS_URL the counters live in Redis (atomic
 * Lua scripts, Redis's own clock), so a quota holds across instances. Leases
 * in Redis expire unless refreshed, so a crashed instance frees its share.
 * Rate limiting uses real time (not the domain clock): it is about load.
 */
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { rateLimited } from "./kernel/errors.js";

export interface Rate {
  perSecond: number;
  burst: number;
}

export interface QuotaConfig {
  /** Requests (HTTP operations and graphql-ws operations) per token. */
  perToken: Rate;
  /** Requests without a valid token, per client address. */
  perAddress: Rate;
  /** Open graphql-ws connections per token. */
  socketsPerToken: number;
  /** Live subscriptions on one connection. */
  subscriptionsPerSocket: number;
  /** Live subscriptions per token, each weighing by its selection's cost (see subscriptionWeight). */
  subscriptionUnitsPerToken: number;
}

export const DEFAULT_QUOTAS: QuotaConfig = {
  perToken: { perSecond: 50, burst: 200 },
  perAddress: { perSecond: 10, burst: 40 },
  socketsPerToken: 20,
  subscriptionsPerSocket: 50,
  subscriptionUnitsPerToken: 200,
};

/** A subscription selection costing up to this weighs 1; costlier ones weigh proportionally more. */
export const SUBSCRIPTION_COST_UNIT = 10;
/** How long a refused connection or subscription should wait before trying again. */
const HELD_RETRY_AFTER_SECONDS = 10;

export const subscriptionWeight = (cost: number): number => Math.max(1, Math.ceil(cost / SUBSCRIPTION_COST_UNIT));

export type Decision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

export interface Lease {
  release(): void;
}

export interface QuotaStore {
  /**
   * Takes `cost` from the bucket. Cost 0 takes nothing and is allowed while at
   * least one unit is left (a failure throttle checks with 0 and takes 1 on failure).
   */
  take(key: string, cost: number, rate: Rate): Promise<Decision>;
  acquire(key: string, weight: number, limit: number): Promise<Lease | null>;
  close(): Promise<void>;
}

/** Buckets and counts in this process. */
export class InProcessQuotaStore implements QuotaStore {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly held = new Map<string, number>();
  private sweeps = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  async take(key: string, cost: number, rate: Rate): Promise<Decision> {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: rate.burst, at: now };
    const tokens = Math.min(rate.burst, bucket.tokens + ((now - bucket.at) / 1000) * rate.perSecond);
    const needed = cost === 0 ? 1 : cost;
    if (tokens < needed) {
      this.buckets.set(key, { tokens, at: now });
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((needed - tokens) / rate.perSecond)) };
    }
    this.buckets.set(key, { tokens: tokens - cost, at: now });
    if (++this.sweeps % 10_000 === 0) this.sweep(now, rate);
    return { allowed: true };
  }

  async acquire(key: string, weight: number, limit: number): Promise<Lease | null> {
    const used = this.held.get(key) ?? 0;
    if (used + weight > limit) return null;
    this.held.set(key, used + weight);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const left = (this.held.get(key) ?? weight) - weight;
        if (left <= 0) this.held.delete(key);
        else this.held.set(key, left);
      },
    };
  }

  /** Forgets full buckets, so one-off addresses don't accumulate. */
  private sweep(now: number, rate: Rate): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * rate.perSecond >= rate.burst) this.buckets.delete(key);
    }
  }

  async close(): Promise<void> {}
}

// KEYS[1] bucket hash; ARGV: cost, perSecond, burst. Redis's clock, so all instances agree.
const TAKE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * rate)
local needed = cost
if needed == 0 then needed = 1 end
local ttl = math.ceil(burst / rate * 1000) + 1000
if tokens < needed then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[1], ttl)
  return tostring((needed - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - cost), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], ttl)
return '0'
`;

// KEYS[1] sorted set of "<lease id>#<weight>" scored by expiry; ARGV: member, weight, limit, ttl ms.
const ACQUIRE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local used = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  used = used + tonumber(string.match(m, '#(%d+)$'))
end
local weight = tonumber(ARGV[2])
if used + weight > tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1] .. '#' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
`;

// KEYS[1] sorted set; ARGV: ttl ms, members... : pushes the expiry of leases still held.
const REFRESH_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
`;

const LEASE_TTL_MS = 60_000;

/**
 * Counters in Redis, shared by every instance with the same prefix. When
 * Redis cannot answer, the request is let through (quotas protect against
 * abuse; they must not turn a Redis outage into a full outage).
 */
export class RedisQuotaStore implements QuotaStore {
  private readonly redis: Redis;
  private readonly held = new Map<string, Set<string>>();
  private readonly refresher: NodeJS.Timeout;
  private sequence = 0;
  private readonly instance = Math.random().toString(36).slice(2, 10);

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    // Commands wait for the connection (the first requests after start-up count too), but never long.
    this.redis = new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: 500 });
    this.redis.on("error", () => undefined); // reported by the event bus's connection; here a failed call lets the request through
    this.refresher = setInterval(() => void this.refresh(), LEASE_TTL_MS / 3);
    this.refresher.unref();
  }

  private key(kind: string, key: string): string {
    return `${this.prefix}:quota:${kind}:${key}`;
  }

  async take(key: string, cost: number, rate: Rate): Promise<Decision> {
    try {
      const wait = Number(await this.redis.eval(TAKE_SCRIPT, 1, this.key("rate", key), cost, rate.perSecond, rate.burst));
      return wait > 0 ? { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(wait)) } : { allowed: true };
    } catch (error) {
      this.logger.debug({ err: error }, "quota check skipped: Redis did not answer");
      return { allowed: true };
    }
  }

  async acquire(key: string, weight: number, limit: number): Promise<Lease | null> {
    const redisKey = this.key("held", key);
    const id = `${this.instance}.${++this.sequence}`;
    const member = `${id}#${weight}`;
    try {
      const ok = Number(await this.redis.eval(ACQUIRE_SCRIPT, 1, redisKey, id, weight, limit, LEASE_TTL_MS));
      if (!ok) return null;
    } catch (error) {
      this.logger.debug({ err: error }, "quota check skipped: Redis did not answer");
      return { release: () => undefined };
    }
    const members = this.held.get(redisKey) ?? new Set<string>();
    members.add(member);
    this.held.set(redisKey, members);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        members.delete(member);
        if (members.size === 0) this.held.delete(redisKey);
        this.redis.zrem(redisKey, member).catch(() => undefined); // else it expires with its TTL
      },
    };
  }

  private async refresh(): Promise<void> {
    for (const [redisKey, members] of this.held) {
      if (members.size === 0) continue;
      await this.redis.eval(REFRESH_SCRIPT, 1, redisKey, LEASE_TTL_MS, ...members).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.refresher);
    const pending = [...this.held.entries()].map(([key, members]) => this.redis.zrem(key, ...members).catch(() => undefined));
    await Promise.all(pending);
    this.held.clear();
    this.redis.disconnect();
  }
}

/** Who a request is counted against: its token, or its client address when it has none. */
export type Caller = { tokenId: string } | { address: string };

/** The server's quotas over one store; each refusal is a DomainError RATE_LIMITED with retryAfterSeconds. */
export class Quotas {
  constructor(
    readonly config: QuotaConfig,
    readonly store: QuotaStore,
  ) {}

  /**
   * A bucket of the caller's own (a throttle): `take(key, 1, rate)` per event,
   * or `take(key, 0, rate)` to ask whether one more would be allowed. Keys
   * share one namespace with the quotas below: prefix them ("enroll:...").
   */
  take(key: string, cost: number, rate: Rate): Promise<Decision> {
    return this.store.take(key, cost, rate);
  }

  /** One request (an HTTP GraphQL operation or a graphql-ws operation); throws RATE_LIMITED when over. */
  async request(caller: Caller): Promise<void> {
    const [key, rate] = "tokenId" in caller ? [`token:${caller.tokenId}`, this.config.perToken] : [`addr:${caller.address}`, this.config.perAddress];
    const decision = await this.store.take(key, 1, rate);
    if (!decision.allowed) {
      throw rateLimited("TOO_MANY_REQUESTS", `too many requests; retry in ${decision.retryAfterSeconds} s`, decision.retryAfterSeconds);
    }
  }

  /** A graphql-ws connection for this token; throws RATE_LIMITED when it holds too many. */
  async openSocket(tokenId: string): Promise<Lease> {
    const lease = await this.store.acquire(`sockets:${tokenId}`, 1, this.config.socketsPerToken);
    if (!lease) {
      throw rateLimited(
        "TOO_MANY_CONNECTIONS",
        `at most ${this.config.socketsPerToken} connections per token`,
        HELD_RETRY_AFTER_SECONDS,
      );
    }
    return lease;
  }

  /** Throws RATE_LIMITED when a connection that has `onSocket` subscriptions may not open another. */
  checkSocketSubscriptions(onSocket: number): void {
    if (onSocket >= this.config.subscriptionsPerSocket) {
      throw rateLimited(
        "TOO_MANY_SUBSCRIPTIONS",
        `at most ${this.config.subscriptionsPerSocket} subscriptions per connection`,
        HELD_RETRY_AFTER_SECONDS,
      );
    }
  }

  /** A subscription of this token, weighing by its cost; throws RATE_LIMITED when the token is over its units. */
  async subscribe(tokenId: string, cost: number): Promise<Lease> {
    const lease = await this.store.acquire(`subscriptions:${tokenId}`, subscriptionWeight(cost), this.config.subscriptionUnitsPerToken);
    if (!lease) {
      throw rateLimited(
        "TOO_MANY_SUBSCRIPTIONS",
        `this token's subscriptions are over their limit of ${this.config.subscriptionUnitsPerToken} units (a subscription weighs 1 per ${SUBSCRIPTION_COST_UNIT} of cost)`,
        HELD_RETRY_AFTER_SECONDS,
      );
    }
    return lease;
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

export function createQuotas(config: QuotaConfig, opts: { redisUrl?: string; prefix: string; logger: Logger }): Quotas {
  return new Quotas(config, opts.redisUrl ? new RedisQuotaStore(opts.redisUrl, opts.prefix, opts.logger) : new InProcessQuotaStore());
}
