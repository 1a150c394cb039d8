import type { EntityManager } from "typeorm";
import type { Database } from "../db/data-source.js";

/**
 * Runs background reads and small writes so they never join someone else's
 * transaction. On SQLite every statement shares TypeORM's one connection: a
 * bare `db.manager` query issued while a mutation's transaction is open runs
 * inside it (it would see uncommitted notifications, and a write would roll
 * back with it), so go through Database's transaction queue. On PostgreSQL a
 * pooled connection in autocommit is enough.
 */
export function withEntityManager<T>(db: Database, work: (em: EntityManager) => Promise<T>): Promise<T> {
  return db.isPostgres ? work(db.manager) : db.transaction(({ em }) => work(em));
}
