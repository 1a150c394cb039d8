import { type MigrationInterface, type QueryRunner, Table, TableIndex } from "typeorm";
import { instantColumn as instant, refColumn as ref, textColumn as text } from "./columns.js";

/** Indexes that walked notifications in id order, now walked in position order (the cursor). */
const BY_POSITION: Array<[string, string, string[]]> = [
  ["notifications_org", "notifications_org_position", ["organizationId", "position"]],
  ["notifications_second_org", "notifications_second_org_position", ["secondOrganizationId", "position"]],
  ["notifications_audience", "notifications_audience_position", ["audience", "position"]],
  ["notifications_type", "notifications_type_position", ["type", "position"]],
];

/**
 * Positions (docs/sequencer.md): notifications.position, the order in which
 * subscribers see notifications and resume, and audit_pending, where
 * PostgreSQL mutations leave their audit events for the sequencer to chain.
 * On SQLite (one writer, ids commit in order) a trigger sets position = id
 * at insert and the chain is appended inline, so audit_pending stays empty.
 */
export class Sequencer1764300001900 implements MigrationInterface {
  name = "Sequencer1764300001900";

  async up(q: QueryRunner): Promise<void> {
    const postgres = q.connection.driver.options.type === "postgres";
    await q.query(`ALTER TABLE "notifications" ADD COLUMN "position" bigint`);
    await q.query(`UPDATE "notifications" SET "position" = "id"`);
    await q.createIndex("notifications", new TableIndex({ name: "notifications_position_unique", columnNames: ["position"], isUnique: true }));
    for (const [old, name, columnNames] of BY_POSITION) {
      await q.dropIndex("notifications", old);
      await q.createIndex("notifications", new TableIndex({ name, columnNames }));
    }
    if (postgres) {
      // What the sequencer looks for: committed rows without a position, in id order.
      await q.query(`CREATE INDEX "notifications_unpositioned" ON "notifications" ("id") WHERE "position" IS NULL`);
    } else {
      await q.query(`CREATE TRIGGER notifications_position AFTER INSERT ON notifications WHEN NEW.position IS NULL
        BEGIN UPDATE notifications SET position = NEW.id WHERE id = NEW.id; END`);
    }
    await q.createTable(
      new Table({
        name: "audit_pending",
        columns: [
          { name: "id", type: "integer", isPrimary: true, isGenerated: true, generationStrategy: "increment" },
          instant("at"),
          ref("actorId", true),
          ref("organizationId", true),
          text("action", 64),
          text("outcome", 32),
          text("targetType", 32),
          text("targetId", 64, true),
          { name: "details", type: "text" },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    const postgres = q.connection.driver.options.type === "postgres";
    await q.dropTable("audit_pending", true);
    if (postgres) await q.query(`DROP INDEX IF EXISTS "notifications_unpositioned"`);
    else await q.query(`DROP TRIGGER IF EXISTS notifications_position`);
    for (const [old, name, columnNames] of BY_POSITION) {
      await q.dropIndex("notifications", name);
      await q.createIndex("notifications", new TableIndex({ name: old, columnNames: [columnNames[0]!, "id"] }));
    }
    await q.dropIndex("notifications", "notifications_position_unique");
    await q.query(`ALTER TABLE "notifications" DROP COLUMN "position"`);
  }
}
