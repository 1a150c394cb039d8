/**
 * SQLite group commit (docs/write-path.md): units of work that queue up
 * together share one BEGIN ... COMMIT, each in its own savepoint; a refusal
 * rolls back only itself, a failed COMMIT fails every caller of the batch,
 * and afterCommit hooks run only after the COMMIT.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordStatements, type Statement } from "../support/statements.js";
import { startTestServer, type TestServer } from "../support/server.js";

describe("group commit on SQLite", () => {
  let server: TestServer;
  let statements: Statement[] = [];
  /** What the writing connection ran so far, trimmed. */
  const log = () => statements.map((s) => s.sql.trim());

  beforeAll(async () => {
    server = await startTestServer();
    await server.app.db.transaction(async ({ em }) => {
      await em.query(`CREATE TABLE probe_parent ("id" TEXT PRIMARY KEY)`);
      await em.query(`CREATE TABLE probe ("id" TEXT PRIMARY KEY, "parent" TEXT REFERENCES probe_parent("id") DEFERRABLE INITIALLY DEFERRED)`);
      await em.query(`INSERT INTO probe_parent ("id") VALUES ('p')`);
    });
    statements = recordStatements(server, { writerOnly: true });
    // On a loaded machine ten units can outlast the time bound; these cases are about what one batch does.
    server.app.db.batchLimits.ms = 10_000;
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  const ids = async () =>
    ((await server.app.db.manager.query(`SELECT "id" FROM probe ORDER BY "id"`)) as Array<{ id: string }>).map((r) => r.id);

  it("should commit units that queue up together in one transaction, a refusal rolling back only itself", async () => {
    statements.length = 0;
    const db = server.app.db;
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        db.transaction(async ({ em }) => {
          await em.query(`INSERT INTO probe ("id", "parent") VALUES (?, 'p')`, [`a${i}`]);
          if (i === 4) throw new Error("refused");
          return i;
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(results.map((_, i) => (i === 4 ? "rejected" : "fulfilled")));
    expect((results[4] as PromiseRejectedResult).reason).toEqual(new Error("refused"));
    expect(results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9]);
    expect(await ids()).toEqual(["a0", "a1", "a2", "a3", "a5", "a6", "a7", "a8", "a9"]);
    // One BEGIN ... COMMIT around all ten: no transaction boundary between the first unit's insert and the last one's.
    const first = log().findIndex((s) => s.startsWith("INSERT INTO probe"));
    const last = log().findLastIndex((s) => s.startsWith("INSERT INTO probe"));
    const between = log().slice(first, last + 1);
    expect(between.filter((s) => s.startsWith("INSERT INTO probe"))).toHaveLength(10);
    expect(between.filter((s) => /^(BEGIN|COMMIT)/i.test(s))).toEqual([]);
    expect(between.filter((s) => /^ROLLBACK TO/i.test(s))).toHaveLength(1);
    expect(log().slice(last).find((s) => /^COMMIT/i.test(s))).toBeDefined();
  });

  it("should answer callers and run their afterCommit hooks only after the COMMIT", async () => {
    statements.length = 0;
    const db = server.app.db;
    const order: string[] = [];
    await Promise.all(
      Array.from({ length: 3 }, (_, i) =>
        db
          .transaction(async ({ em, afterCommit }) => {
            await em.query(`INSERT INTO probe ("id", "parent") VALUES (?, 'p')`, [`h${i}`]);
            afterCommit(() => order.push(`hook ${i} after ${log().filter((s) => /^COMMIT/i.test(s)).length} commit(s)`));
          })
          .then(() => order.push(`answer ${i}`)),
      ),
    );
    expect(order.slice(0, 3).every((entry) => /^hook \d after [1-9]/.test(entry))).toBe(true);
    expect(order.filter((entry) => entry.startsWith("answer"))).toHaveLength(3);
  });

  it("should fail every caller of a batch whose COMMIT fails, and keep none of its rows", async () => {
    const db = server.app.db;
    const hooks: number[] = [];
    // The deferred foreign key is checked at COMMIT: the one orphan makes the whole batch's COMMIT fail.
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) =>
        db.transaction(async ({ em, afterCommit }) => {
          await em.query(`INSERT INTO probe ("id", "parent") VALUES (?, ?)`, [`c${i}`, i === 2 ? "missing" : "p"]);
          afterCommit(() => hooks.push(i));
        }),
      ),
    );
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/FOREIGN KEY/i);
    expect(hooks).toEqual([]);
    expect((await ids()).filter((id) => id.startsWith("c"))).toEqual([]);
    // The connection is usable again afterwards.
    await db.transaction(({ em }) => em.query(`INSERT INTO probe ("id", "parent") VALUES ('after', 'p')`));
    expect(await ids()).toContain("after");
  });

  it("should close a batch at its unit bound and start the next one", async () => {
    statements.length = 0;
    const db = server.app.db;
    db.batchLimits.units = 4;
    try {
      await Promise.all(Array.from({ length: 10 }, (_, i) => db.transaction(({ em }) => em.query(`INSERT INTO probe ("id", "parent") VALUES (?, 'p')`, [`u${i}`]))));
    } finally {
      db.batchLimits.units = 64;
    }
    const first = log().findIndex((s) => s.startsWith("INSERT INTO probe"));
    const last = log().findLastIndex((s) => s.startsWith("INSERT INTO probe"));
    // 4 + 4 + 2: at least two COMMITs between the first insert and the last (background units may add to the batches).
    expect(log().slice(first, last + 1).filter((s) => /^COMMIT/i.test(s)).length).toBeGreaterThanOrEqual(2);
    expect((await ids()).filter((id) => id.startsWith("u"))).toHaveLength(10);
  });

  it("should run with synchronous=FULL in WAL mode (durable at every COMMIT)", async () => {
    const [{ journal_mode }] = (await server.app.db.dataSource.query("PRAGMA journal_mode")) as Array<{ journal_mode: string }>;
    const [{ synchronous }] = (await server.app.db.dataSource.query("PRAGMA synchronous")) as Array<{ synchronous: number }>;
    expect(journal_mode).toBe("wal");
    expect(synchronous).toBe(2);
  });

  it("should give the writing and the reading connection a page cache of 64 MiB each, not SQLite's 2 MiB", async () => {
    for (const source of [server.app.db.dataSource, server.app.db.readDataSource]) {
      const [{ cache_size }] = (await source.query("PRAGMA cache_size")) as Array<{ cache_size: number }>;
      expect(cache_size).toBe(-65_536);
    }
    expect(server.app.db.readDataSource).not.toBe(server.app.db.dataSource);
  });
});
