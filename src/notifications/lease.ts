import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";

const RELEASED = new Date(0);

/**
 * A named lease in app_state (key = the lease, value = the holder,
 * updatedAt = when the holder last renewed it), taken with guarded SQL that
 * works the same on SQLite and PostgreSQL: insert the row if absent, then
 * UPDATE it only if this holder already has it or the last renewal is older
 * than the time to live. One UPDATE succeeds, the others match no row. A
 * holder that dies lets the lease lapse after ttlMs; a live one renews it
 * (tryAcquire again) well within ttlMs.
 */
export class DatabaseLease {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    readonly key: string,
    readonly ttlMs: number,
  ) {}

  /** Takes or renews the lease for `holder`; false while someone else holds it. */
  async tryAcquire(holder: string): Promise<boolean> {
    const now = this.clock.now();
    const staleBefore = new Date(now.getTime() - this.ttlMs);
    return this.db.isolated(async (em) => {
      await em
        .createQueryBuilder()
        .insert()
        .into("app_state")
        .values({ key: this.key, value: "", updatedAt: RELEASED.toISOString() })
        .orIgnore()
        .execute();
      const result = await em
        .createQueryBuilder()
        .update("app_state")
        .set({ value: holder, updatedAt: now.toISOString() })
        .where(`"key" = :key AND ("value" = :holder OR "updatedAt" < :staleBefore)`, {
          key: this.key,
          holder,
          staleBefore: staleBefore.toISOString(),
        })
        .execute();
      return result.affected === 1;
    });
  }

  /** True when a holder took the lease and neither released nor renewed it within the TTL: it died at work. */
  async abandoned(): Promise<boolean> {
    const row = await this.db.isolated((em) =>
      em
        .createQueryBuilder()
        .select(`s."updatedAt"`, "updatedAt")
        .from("app_state", "s")
        .where("s.key = :key", { key: this.key })
        .getRawOne<{ updatedAt: string }>(),
    );
    if (!row || row.updatedAt === RELEASED.toISOString()) return false;
    return row.updatedAt < new Date(this.clock.now().getTime() - this.ttlMs).toISOString();
  }

  async release(holder: string): Promise<void> {
    await this.db.isolated((em) =>
      em
        .createQueryBuilder()
        .update("app_state")
        .set({ updatedAt: RELEASED.toISOString() })
        .where(`"key" = :key AND "value" = :holder`, { key: this.key, holder })
        .execute(),
    );
  }
}

/** Small values in app_state (scanner watermarks). */
export class AppState {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  async get(key: string): Promise<string | null> {
    const row = await this.db.isolated((em) =>
      em.createQueryBuilder().select("s.value", "value").from("app_state", "s").where("s.key = :key", { key }).getRawOne<{ value: string }>(),
    );
    return row?.value ?? null;
  }

  async set(key: string, value: string): Promise<void> {
    const updatedAt = this.clock.now().toISOString();
    await this.db.isolated(async (em) => {
      await em.createQueryBuilder().insert().into("app_state").values({ key, value, updatedAt }).orIgnore().execute();
      await em.createQueryBuilder().update("app_state").set({ value, updatedAt }).where(`"key" = :key`, { key }).execute();
    });
  }
}
