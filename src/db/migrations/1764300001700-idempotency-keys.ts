import { type MigrationInterface, type QueryRunner, Table } from "typeorm";
import { instantColumn as instant, textColumn as text } from "./columns.js";

/**
 * Idempotency-Key: one row per mutation committed under a client's key,
 * written in that mutation's own transaction, so a retry after an ambiguous
 * failure finds what the first attempt committed (and only if it did).
 */
export class IdempotencyKeys1764300001700 implements MigrationInterface {
  name = "IdempotencyKeys1764300001700";

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: "idempotency_keys",
        columns: [
          { ...text("scope", 36), isPrimary: true },
          { ...text("key", 200), isPrimary: true },
          { name: "seq", type: "integer", isPrimary: true },
          text("fingerprint", 64),
          text("action", 80),
          { name: "result", type: "text" },
          instant("createdAt"),
        ],
        indices: [{ name: "idempotency_keys_created", columnNames: ["createdAt"] }],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable("idempotency_keys", true);
  }
}
