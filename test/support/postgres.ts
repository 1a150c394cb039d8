/** The machine's PostgreSQL for tests: the base URL, a fresh schema per server, cases that only mean something there. */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { it } from "vitest";

export const PG_BASE_URL = process.env.KEYPORTAL_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export type DbKind = "sqlite" | "postgres";

/** Registers a case only on PostgreSQL, where it means something, instead of showing it as skipped on SQLite. */
export function onPostgresIn(db: DbKind) {
  return (name: string, fn: () => Promise<void>, timeout?: number) => {
    if (db === "postgres") it(name, fn, timeout);
  };
}

/** A fresh, empty schema in the test database; dropped by the returned function. */
export async function freshPostgresSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `kp_${randomBytes(6).toString("hex")}`;
  const client = new pg.Client({ connectionString: PG_BASE_URL });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  return {
    url: `${PG_BASE_URL}?schema=${schema}`,
    async drop() {
      const c = new pg.Client({ connectionString: PG_BASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

