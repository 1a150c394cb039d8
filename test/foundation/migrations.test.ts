import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATIONS } from "../../src/db/migrations/index.js";
import { available } from "../support/deps.js";
import { type DbKind, onPostgresIn } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";


const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("migrations on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(`a fresh ${db} database`, () => {
    const onPostgres = onPostgresIn(db);
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ db });
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should have every migration applied, in order, and none pending", async () => {
      const { dataSource } = server.app.db;
      expect(await dataSource.showMigrations()).toBe(false);
      const rows = (await dataSource.query(`SELECT name FROM migrations ORDER BY "timestamp"`)) as Array<{ name: string }>;
      expect(rows.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => new m().name ?? m.name));
    });

    it("should answer /readyz with 200", async () => {
      const res = await fetch(`${server.url}/readyz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "ready", database: "ok" });
    });

    it("should have recorded the bootstrap as audit event 1", async () => {
      const rows = (await server.app.db.dataSource.query(`SELECT seq, action FROM audit_events ORDER BY seq`)) as Array<{
        seq: number | string;
        action: string;
      }>;
      expect(rows.map((r) => [Number(r.seq), r.action])).toEqual([[1, "system.bootstrap"]]);
    });

    it("should refuse UPDATE of audit_events in the database", async () => {
      await expect(server.app.db.dataSource.query(`UPDATE audit_events SET details = '{}' WHERE seq = 1`)).rejects.toThrow(
        /append-only/,
      );
    });

    it("should refuse DELETE from audit_events in the database", async () => {
      await expect(server.app.db.dataSource.query(`DELETE FROM audit_events WHERE seq = 1`)).rejects.toThrow(/append-only/);
      const [{ n }] = (await server.app.db.dataSource.query(`SELECT COUNT(*) AS n FROM audit_events`)) as Array<{ n: number | string }>;
      expect(Number(n)).toBe(1);
    });

    onPostgres("should refuse TRUNCATE of audit_events on PostgreSQL", async () => {
      await expect(server.app.db.dataSource.query(`TRUNCATE audit_events`)).rejects.toThrow(/append-only/);
    });

    it("should leave the database unchanged when started a second time on it", async () => {
      const again = await startTestServer({ db, dataDir: server.dataDir, databaseUrl: server.databaseUrl });
      try {
        expect(await again.app.db.dataSource.showMigrations()).toBe(false);
        const rows = (await again.app.db.dataSource.query(`SELECT COUNT(*) AS n FROM migrations`)) as Array<{ n: number | string }>;
        expect(Number(rows[0]!.n)).toBe(MIGRATIONS.length);
        expect((await fetch(`${again.url}/readyz`)).status).toBe(200);
      } finally {
        await again.close({ keepData: true });
      }
    });
  });
});
