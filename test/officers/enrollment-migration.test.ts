/**
 * Upgrading a database from before enrollment: officers that already hold a
 * token count as enrolled, the others must enroll. On SQLite and PostgreSQL.
 */
import "reflect-metadata";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DataSource } from "typeorm";
import { afterAll, describe, expect, it } from "vitest";
import { dataSourceOptions } from "../../src/db/data-source.js";
import { MIGRATIONS } from "../../src/db/migrations/index.js";
import { Identity1764300001000 } from "../../src/db/migrations/1764300001000-identity.js";
import { available } from "../support/deps.js";
import { type DbKind, freshPostgresSchema } from "../support/postgres.js";
import { ENTITIES } from "../../src/features.js";

const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("the identity migration on %s", (db) => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it.skipIf(db === "postgres" && !postgres)("should mark officers holding a token as enrolled and leave the others to enroll", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-identity-migration-"));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let databaseUrl: string | undefined;
    if (db === "postgres") {
      const schema = await freshPostgresSchema();
      cleanups.push(() => schema.drop());
      databaseUrl = schema.url;
    }
    const options = dataSourceOptions({ databaseUrl, dataDir, entities: ENTITIES });
    const index = MIGRATIONS.indexOf(Identity1764300001000);
    expect(index).toBeGreaterThan(0);
    const before = new DataSource({ ...options, migrations: MIGRATIONS.slice(0, index) });
    await before.initialize();
    await before.runMigrations({ transaction: "each" });
    const at = "2026-11-01T00:00:00.000Z";
    await before.query(`INSERT INTO organizations (id, name, kind, "contactEmail", country, "createdAt") VALUES ('org-1', 'Old Bank', 'PARTICIPANT', 'pki@old.example', 'GB', '${at}')`);
    for (const id of ["with-token", "without-token"]) {
      await before.query(
        `INSERT INTO officers (id, "organizationId", name, email, role, status, "createdAt") VALUES ('${id}', 'org-1', '${id}', '${id}@old.example', 'SECURITY_OFFICER', 'ACTIVE', '${at}')`,
      );
    }
    await before.query(`INSERT INTO api_tokens (id, "officerId", "tokenHash", label, "createdAt") VALUES ('t-1', 'with-token', '${"a".repeat(64)}', 'old', '${at}')`);
    await before.destroy();

    const after = new DataSource({ ...options, migrations: MIGRATIONS });
    await after.initialize();
    cleanups.push(() => after.destroy());
    const applied = await after.runMigrations({ transaction: "each" });
    expect(applied.map((m) => m.name)).toContain("Identity1764300001000");
    const rows = (await after.query(`SELECT id, "enrolledAt" FROM officers ORDER BY id`)) as Array<{ id: string; enrolledAt: string | null }>;
    expect(rows).toEqual([
      { id: "with-token", enrolledAt: at },
      { id: "without-token", enrolledAt: null },
    ]);
    const tokens = (await after.query(`SELECT "expiresAt" FROM api_tokens`)) as Array<{ expiresAt: string | null }>;
    expect(tokens).toEqual([{ expiresAt: null }]);
  });
});
