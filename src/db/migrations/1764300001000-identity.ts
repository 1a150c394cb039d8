import { type MigrationInterface, type QueryRunner, Table, TableColumn } from "typeorm";
import { instantColumn as instant, refColumn as ref, textColumn as text } from "./columns.js";

/**
 * Officer enrollment, token expiry and dual control of signing:
 * - officers.enrolledAt, and at most one live enrollment code per officer
 *   (only its SHA-256 is kept; a new code replaces the old row);
 * - api_tokens.expiresAt;
 * - the first operator's approval of a CSR, and of a KMS certificate rotation.
 * Officers that already hold a token were, in effect, enrolled: they count as enrolled.
 */
export class Identity1764300001000 implements MigrationInterface {
  name = "Identity1764300001000";

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn("officers", new TableColumn(instant("enrolledAt", true)));
    await q.query(`UPDATE officers SET "enrolledAt" = "createdAt" WHERE EXISTS (SELECT 1 FROM api_tokens t WHERE t."officerId" = officers.id)`);
    await q.addColumn("api_tokens", new TableColumn(instant("expiresAt", true)));
    await q.addColumn("certificate_signing_requests", new TableColumn(ref("approvedById", true)));
    await q.addColumn("certificate_signing_requests", new TableColumn(instant("approvedAt", true)));
    await q.createTable(
      new Table({
        name: "enrollment_codes",
        columns: [
          { name: "officerId", type: "varchar", length: "36", isPrimary: true },
          text("codeHash", 64),
          instant("expiresAt"),
          instant("createdAt"),
        ],
        indices: [{ name: "enrollment_codes_hash_unique", columnNames: ["codeHash"], isUnique: true }],
      }),
    );
    await q.createTable(
      new Table({
        name: "kms_rotation_approvals",
        columns: [
          { name: "id", type: "varchar", length: "36", isPrimary: true },
          text("environment", 16),
          text("purpose", 24),
          ref("approvedById"),
          instant("approvedAt"),
          instant("expiresAt"),
        ],
        // One standing approval per environment and purpose: a newer one replaces it.
        indices: [{ name: "kms_rotation_approvals_unique", columnNames: ["environment", "purpose"], isUnique: true }],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable("kms_rotation_approvals", true);
    await q.dropTable("enrollment_codes", true);
    await q.dropColumn("certificate_signing_requests", "approvedAt");
    await q.dropColumn("certificate_signing_requests", "approvedById");
    await q.dropColumn("api_tokens", "expiresAt");
    await q.dropColumn("officers", "enrolledAt");
  }
}
