import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import os from "node:os";
import type { DataSource } from "typeorm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/audit/audit.service.js";
import { Mutations } from "../../src/kernel/unit-of-work.js";
import { ManualClock } from "../../src/kernel/clock.js";
import { createDataSource, Database } from "../../src/db/data-source.js";
import { MIGRATIONS } from "../../src/db/migrations/index.js";
import { InProcessEventBus } from "../../src/kernel/events.js";
import { FileMailer } from "../../src/notifications/mailer.js";
import { Outbox } from "../../src/notifications/outbox.js";
import { Sequencer } from "../../src/notifications/sequencer.js";
import { EnrollmentMailer, EnrollmentThrottle } from "../../src/officers/enrollment.js";
import { OfficerService } from "../../src/officers/officer.service.js";
import { bootstrap } from "../../src/organizations/bootstrap.js";
import { AccessPolicy } from "../../src/policy.js";
import { available } from "../support/deps.js";
import { type DbKind, freshPostgresSchema } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { auditRows, capturedLogger, expectError } from "./helpers.js";
import { ENTITIES } from "../../src/features.js";

const postgres = await available("postgres");

async function operators(server: TestServer): Promise<Array<{ id: string; email: string }>> {
  return (await server.app.db.dataSource.query(`SELECT id, email FROM officers WHERE role = 'KMS_OPERATOR'`)) as Array<{ id: string; email: string }>;
}

describe.each<DbKind>(["sqlite", "postgres"])("bootstrap on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(`the first start on ${db} without KEYPORTAL_BOOTSTRAP_TOKEN`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    it("should write a working token to <dataDir>/bootstrap-token (0600), log the path but not the token, and not redo any of it on restart", async () => {
      const firstLog = capturedLogger();
      const first = await startTestServer({ db, bootstrapToken: false, overrides: { logger: firstLog.logger } });
      const { dataDir, databaseUrl } = first;
      const file = path.join(dataDir, "bootstrap-token");
      cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));

      const token = readFileSync(file, "utf8").trim();
      expect(token).toMatch(/^kp_[A-Za-z0-9_-]{43}$/);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const me = await first.ok<{ me: { role: string } }>(`{ me { role } }`, {}, token);
      expect(me.me.role).toBe("KMS_OPERATOR");

      const logged = firstLog.lines().join("\n");
      expect(logged).toContain(file);
      expect(logged).not.toContain(token);
      const bootstrapEvents = (await auditRows(first)).filter((e) => e.action === "system.bootstrap");
      expect(bootstrapEvents).toHaveLength(1);
      expect(bootstrapEvents[0]!.details).not.toContain(token);
      expect(JSON.parse(bootstrapEvents[0]!.details)).toMatchObject({ tokenSource: "file" });
      const before = statSync(file);
      const [operator] = await operators(first);
      await first.close({ keepData: true });

      // Same data dir (and database), again without a token, then once with a different KEYPORTAL_BOOTSTRAP_TOKEN.
      const secondLog = capturedLogger();
      const second = await startTestServer({ db, dataDir, databaseUrl, bootstrapToken: false, overrides: { logger: secondLog.logger } });
      try {
        expect(await operators(second)).toEqual([operator]);
        const after = statSync(file);
        expect(readFileSync(file, "utf8").trim()).toBe(token);
        expect(after.mtimeMs).toBe(before.mtimeMs);
        expect(after.ino).toBe(before.ino);
        expect(secondLog.lines().join("\n")).not.toContain(token);
        expect(secondLog.lines().join("\n")).not.toContain("created the first KMS operator");
        expect((await second.ok<{ me: { role: string } }>(`{ me { role } }`, {}, token)).me.role).toBe("KMS_OPERATOR");
        expect((await auditRows(second)).filter((e) => e.action === "system.bootstrap")).toHaveLength(1);
      } finally {
        await second.close({ keepData: true });
      }

      const lateToken = `kp_late_${randomBytes(24).toString("base64url")}`;
      const third = await startTestServer({ db, dataDir, databaseUrl, env: { KEYPORTAL_BOOTSTRAP_TOKEN: lateToken } });
      cleanups.push(() => third.close());
      expect(await operators(third)).toEqual([operator]);
      expectError(await third.gql(`{ me { role } }`, {}, lateToken), "UNAUTHENTICATED");
      expect(readFileSync(file, "utf8").trim()).toBe(token);
    });

    it("should use KEYPORTAL_BOOTSTRAP_TOKEN when given and write no file", async () => {
      const log = capturedLogger();
      const server = await startTestServer({ db, overrides: { logger: log.logger } });
      cleanups.push(() => server.close());
      expect(readdirSync(server.dataDir)).not.toContain("bootstrap-token");
      expect((await server.ok<{ me: { role: string } }>(`{ me { role } }`)).me.role).toBe("KMS_OPERATOR");
      expect(log.lines().join("\n")).not.toContain(server.operatorToken);
      const rows = (await server.app.db.dataSource.query(`SELECT "tokenHash" FROM api_tokens`)) as Array<{ tokenHash: string }>;
      expect(rows).toHaveLength(1);
      expect(rows[0]!.tokenHash).not.toContain(server.operatorToken);
    });
  });
});

describe.skipIf(!postgres)("two instances starting together on one empty PostgreSQL database", () => {
  let schema: Awaited<ReturnType<typeof freshPostgresSchema>>;
  const sources: DataSource[] = [];
  beforeAll(async () => {
    schema = await freshPostgresSchema();
  });
  afterAll(async () => {
    for (const source of sources) if (source.isInitialized) await source.destroy();
    await schema?.drop();
  });

  it("should both run migrations without failing, and apply each once", async () => {
    for (let i = 0; i < 2; i++) sources.push(createDataSource({ databaseUrl: schema.url, dataDir: "/nonexistent", entities: ENTITIES }));
    await Promise.all(sources.map((s) => s.initialize()));
    await Promise.all(sources.map((s) => s.runMigrations({ transaction: "each" })));
    const rows = (await sources[0]!.query(`SELECT name FROM migrations`)) as Array<{ name: string }>;
    expect(rows).toHaveLength(MIGRATIONS.length);
    for (const source of sources) expect(await source.showMigrations()).toBe(false);
  });

  it("should create one KMS organization, one operator and one bootstrap event", async () => {
    const clock = new ManualClock("2026-11-28T08:00:00.000Z");
    const logger = capturedLogger().logger;
    const instances = sources.map((source) => {
      const db = new Database(source);
      const bus = new InProcessEventBus();
      const audit = new AuditLog(db, clock);
      const outbox = new Outbox(clock, bus);
      // As the composition root does: the audit log's events reach the chain through a sequencer (PostgreSQL).
      audit.sequenceWith(new Sequencer({ db, bus, audit, logger }));
      const mutations = new Mutations(db, audit, outbox, logger);
      const policy = new AccessPolicy({ activeForMsp: async () => [] });
      return { db, clock, mutations, officers: new OfficerService(db, clock, policy, mutations, bus, {
        ttlMs: 72 * 3_600_000,
        mailer: new EnrollmentMailer(new FileMailer(path.join(os.tmpdir(), "keyportal-unused-mail")), "keyportal@localhost", "http://127.0.0.1:4000", logger),
        throttle: new EnrollmentThrottle(clock),
      }), logger };
    });
    const results = await Promise.all(
      instances.map((deps, i) => bootstrap(deps, { dataDir: "/nonexistent", token: `kp_race_${i}_${randomBytes(24).toString("base64url")}` })),
    );
    expect(results.map((r) => r.created).sort()).toEqual([false, true]);
    const q = (sql: string) => sources[0]!.query(sql) as Promise<Array<Record<string, unknown>>>;
    expect(await q(`SELECT id FROM organizations WHERE kind = 'KMS'`)).toHaveLength(1);
    expect(await q(`SELECT id FROM officers WHERE role = 'KMS_OPERATOR'`)).toHaveLength(1);
    expect(await q(`SELECT id FROM api_tokens`)).toHaveLength(1);
    const events = await q(`SELECT action, outcome FROM audit_events ORDER BY seq`);
    expect(events.filter((e) => e.action === "system.bootstrap" && e.outcome === "SUCCESS")).toHaveLength(1);
  });
});
