import { AsyncLocalStorage } from "node:async_hooks";
import { createHash } from "node:crypto";
import type { EntityManager } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { badInput, conflict } from "../kernel/errors.js";
import type { IdempotencyPort, IdempotentRequest } from "../kernel/ports.js";

export type { IdempotentRequest };

/** Filled in during a request (the key first, the scope once the viewer is known); read by Mutations.run. */
export interface IdempotencySlot {
  pending?: { key: string; fingerprint: string };
  request?: IdempotentRequest;
}

const slots = new AsyncLocalStorage<IdempotencySlot>();

/** Runs `fn` (the request's handling) with a slot that authentication can fill in. */
export function withIdempotencySlot<T>(slot: IdempotencySlot, fn: () => T): T {
  return slots.run(slot, fn);
}

/** Binds the pending key to the authenticated viewer's officer (nothing without a viewer: such a request can change nothing). */
export function bindIdempotencyKey(officerId: string | undefined): void {
  const slot = slots.getStore();
  if (slot?.pending && officerId) slot.request = { scope: officerId, ...slot.pending, seq: 0 };
}

/** The key of the request being handled, if it has one. */
export function currentIdempotentRequest(): IdempotentRequest | undefined {
  return slots.getStore()?.request;
}

/** The header value (or graphql-ws extensions.idempotencyKey): 1 to 200 visible ASCII characters. */
export function parseIdempotencyKey(raw: unknown): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "string" || !/^[\x21-\x7e]{1,200}$/.test(raw)) {
    throw badInput("INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1 to 200 visible ASCII characters (a UUID is a good choice)");
  }
  return raw;
}

export function requestFingerprint(query: unknown, operationName: unknown, variables: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify([query ?? null, operationName ?? null, variables ?? null]))
    .digest("hex");
}

/** A mutation's result as kept for a replay: a scalar, or the entity (by id) it returned. */
type StoredResult = { value: string | number | boolean | null } | { entity: string; id: string } | { opaque: true };

/**
 * The idempotency_keys table. Mutations.run calls lock() and find() first
 * inside its transaction (a lock on the key on PostgreSQL, the one queued
 * connection on SQLite, so two attempts with one key never both run) and
 * record() last, in the same transaction: a key is recorded exactly when its
 * mutation committed. A retry then returns the committed result (the same
 * certificate, the same request) instead of running again into a CONFLICT.
 * Only references are stored, never a token or other secret: a mutation
 * whose result is neither a scalar nor an entity answers a replay with
 * CONFLICT / ALREADY_APPLIED.
 */
export class IdempotencyKeys implements IdempotencyPort {
  private lastPurge = 0;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    readonly ttlMs: number,
  ) {}

  /**
   * PostgreSQL: waits, inside the mutation's transaction, for any other
   * attempt under the same key and position to commit or roll back (a
   * transaction-scoped advisory lock on the key), so find() then sees what
   * it committed. SQLite has one writer: nothing to wait for.
   */
  async lock(em: EntityManager, request: IdempotentRequest, seq: number): Promise<void> {
    if (!this.db.isPostgres) return;
    await em.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`idempotency ${request.scope} ${request.key} ${seq}`]);
  }

  /** The result committed under this key and position, if any (and not older than the TTL). */
  async find(em: EntityManager, request: IdempotentRequest, seq: number): Promise<{ found: false } | { found: true; result: unknown }> {
    const row = (await em
      .createQueryBuilder()
      .select(["k.fingerprint AS fingerprint", "k.result AS result", `k."createdAt" AS "createdAt"`])
      .from("idempotency_keys", "k")
      .where("k.scope = :scope AND k.key = :key AND k.seq = :seq", { scope: request.scope, key: request.key, seq })
      .getRawOne()) as { fingerprint: string; result: string; createdAt: string } | undefined;
    if (!row) return { found: false };
    if (row.createdAt < new Date(this.clock.now().getTime() - this.ttlMs).toISOString()) {
      await em.createQueryBuilder().delete().from("idempotency_keys").where("scope = :scope AND key = :key", request).execute();
      return { found: false };
    }
    if (row.fingerprint !== request.fingerprint) {
      throw badInput("IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used for a different request; use a new key for a new request");
    }
    const stored = JSON.parse(row.result) as StoredResult;
    if ("value" in stored) return { found: true, result: stored.value };
    if ("entity" in stored) {
      const result = await em.findOne(stored.entity, { where: { id: stored.id } });
      if (result) return { found: true, result };
    }
    throw conflict("ALREADY_APPLIED", "this request was already carried out under this Idempotency-Key; its result cannot be shown again");
  }

  async record(em: EntityManager, request: IdempotentRequest, seq: number, action: string, result: unknown): Promise<void> {
    await em
      .createQueryBuilder()
      .insert()
      .into("idempotency_keys")
      .values({ scope: request.scope, key: request.key, seq, fingerprint: request.fingerprint, action, result: JSON.stringify(this.stored(result)), createdAt: this.clock.now().toISOString() })
      .execute();
  }

  /** Deletes keys past their TTL, at most once an hour per instance (after a commit, outside it). */
  current(): IdempotentRequest | undefined {
    return currentIdempotentRequest();
  }

  purgeSoon(): void {
    const now = performance.now();
    if (now - this.lastPurge < 3_600_000 && this.lastPurge !== 0) return;
    this.lastPurge = now;
    const before = new Date(this.clock.now().getTime() - this.ttlMs).toISOString();
    void this.db
      .isolated((em) => em.createQueryBuilder().delete().from("idempotency_keys").where(`"createdAt" < :before`, { before }).execute())
      .catch(() => {
        this.lastPurge = 0; // the next commit tries again
      });
  }

  private stored(result: unknown): StoredResult {
    if (result === null || result === undefined) return { value: null };
    if (typeof result === "string" || typeof result === "number" || typeof result === "boolean") return { value: result };
    const id = (result as { id?: unknown }).id;
    const constructor = (result as object).constructor;
    if (typeof id === "string" && this.db.dataSource.hasMetadata(constructor)) {
      return { entity: this.db.dataSource.getMetadata(constructor).name, id };
    }
    return { opaque: true };
  }
}
