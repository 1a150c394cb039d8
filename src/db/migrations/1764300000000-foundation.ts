import { type MigrationInterface, type QueryRunner, Table, TableIndex } from "typeorm";
import { idColumn as id, instantColumn as instant, refColumn as ref, textColumn as text } from "./columns.js";

export class Foundation1764300000000 implements MigrationInterface {
  name = "Foundation1764300000000";

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: "organizations",
        columns: [id(), text("name", 200), text("kind", 16), text("contactEmail", 254), text("country", 2), instant("createdAt")],
        indices: [{ name: "organizations_name_unique", columnNames: ["name"], isUnique: true }],
      }),
    );
    await q.createTable(
      new Table({
        name: "officers",
        columns: [
          id(),
          ref("organizationId"),
          text("name", 200),
          text("email", 254),
          text("role", 24),
          text("status", 16),
          instant("createdAt"),
          instant("deactivatedAt", true),
        ],
        foreignKeys: [{ columnNames: ["organizationId"], referencedTableName: "organizations", referencedColumnNames: ["id"] }],
        indices: [{ name: "officers_org_email_unique", columnNames: ["organizationId", "email"], isUnique: true }],
      }),
    );
    await q.createTable(
      new Table({
        name: "api_tokens",
        columns: [
          id(),
          ref("officerId"),
          text("tokenHash", 64),
          text("label", 100),
          instant("createdAt"),
          instant("lastUsedAt", true),
          instant("revokedAt", true),
        ],
        foreignKeys: [{ columnNames: ["officerId"], referencedTableName: "officers", referencedColumnNames: ["id"] }],
        indices: [
          { name: "api_tokens_hash_unique", columnNames: ["tokenHash"], isUnique: true },
          { name: "api_tokens_officer", columnNames: ["officerId"] },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: "audit_events",
        columns: [
          { name: "seq", type: "bigint", isPrimary: true },
          instant("at"),
          ref("actorId", true),
          ref("organizationId", true),
          text("action", 64),
          text("outcome", 32),
          text("targetType", 32),
          text("targetId", 64, true),
          { name: "details", type: "text" },
          text("hash", 64),
          text("prevHash", 64),
        ],
        indices: [{ name: "audit_events_org", columnNames: ["organizationId", "seq"] }],
      }),
    );
    // One row that serializes appends: its lock orders the chain on PostgreSQL.
    await q.createTable(
      new Table({
        name: "audit_head",
        columns: [
          { name: "id", type: "integer", isPrimary: true },
          { name: "seq", type: "bigint" },
          text("hash", 64),
        ],
      }),
    );
    await q.query(`INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '${"0".repeat(64)}')`);
    if (q.connection.driver.options.type === "postgres") {
      await q.query(`CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql`);
      await q.query(`CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`);
      await q.query(`CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()`);
    } else {
      await q.query(`CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END`);
      await q.query(`CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
        BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END`);
    }
    await q.createTable(
      new Table({
        name: "notifications",
        columns: [
          { name: "id", type: "integer", isPrimary: true, isGenerated: true, generationStrategy: "increment" },
          text("type", 40),
          instant("occurredAt"),
          ref("organizationId", true),
          ref("secondOrganizationId", true),
          text("audience", 32, true),
          text("certificateKind", 16, true),
          text("environment", 16, true),
          { name: "message", type: "text" },
          ref("certificateId", true),
          ref("csrId", true),
          ref("delegationId", true),
          ref("officerId", true),
          ref("kmsCertificateId", true),
          { name: "daysUntilExpiry", type: "integer", isNullable: true },
          text("dedupeKey", 120, true),
        ],
        indices: [
          { name: "notifications_dedupe_unique", columnNames: ["dedupeKey"], isUnique: true },
          { name: "notifications_org", columnNames: ["organizationId", "id"] },
        ],
      }),
    );
    // Small shared state: CA material, bootstrap marker, scheduler leases.
    await q.createTable(
      new Table({
        name: "app_state",
        columns: [{ name: "key", type: "varchar", length: "120", isPrimary: true }, { name: "value", type: "text" }, instant("updatedAt")],
      }),
    );
    await q.createIndex("officers", new TableIndex({ name: "officers_org", columnNames: ["organizationId", "status"] }));
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ["app_state", "notifications", "audit_head", "audit_events", "api_tokens", "officers", "organizations"]) {
      await q.dropTable(table, true);
    }
    if (q.connection.driver.options.type === "postgres") {
      await q.query(`DROP FUNCTION IF EXISTS audit_events_append_only()`);
    }
  }
}
