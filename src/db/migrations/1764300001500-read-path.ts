import { type MigrationInterface, type QueryRunner, Table, TableIndex } from "typeorm";
import { refColumn as ref, textColumn as text } from "./columns.js";

const tallyCount = () => ({ name: "n", type: "bigint", default: 0 });

/**
 * The read path at a million certificates (docs/read-path.md):
 * - certificates.lifecycle, the stored form of the time-derived status
 *   (ACTIVE until the expiry sweep marks it EXPIRED, or REVOKED), so a status
 *   filter is an index prefix rather than a predicate on time;
 * - for every list and filter an index whose order is the list's keyset
 *   order, so a page costs its size, not the table;
 * - certificate_tallies and csr_tallies: counts kept exact in the
 *   transaction of each change, so totalCount sums a few rows. Per
 *   organization and, under organizationId '*', for all of them; ACTIVE
 *   certificates also by the day of notAfter, for expiringWithinDays.
 */
export class ReadPath1764300001500 implements MigrationInterface {
  name = "ReadPath1764300001500";

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "certificates" ADD COLUMN "lifecycle" varchar(16) NOT NULL DEFAULT 'ACTIVE'`);
    // EXPIRED is left to the first sweep, which runs before any read that depends on it.
    await q.query(`UPDATE "certificates" SET "lifecycle" = 'REVOKED' WHERE "revokedAt" IS NOT NULL`);

    const certificateIndexes: Array<[string, string[]]> = [
      ["certificates_env_created", ["environment", "createdAt", "id"]],
      ["certificates_kind_created", ["kind", "createdAt", "id"]],
      ["certificates_lifecycle_created", ["lifecycle", "createdAt", "id"]],
      ["certificates_org_lifecycle_created", ["organizationId", "lifecycle", "createdAt", "id"]],
      // The sweep, expiringWithinDays (ordered by notAfter) and the part-day of its count.
      ["certificates_lifecycle_not_after", ["lifecycle", "notAfter", "id"]],
      ["certificates_org_lifecycle_not_after", ["organizationId", "lifecycle", "notAfter", "id"]],
    ];
    for (const [name, columnNames] of certificateIndexes) await q.createIndex("certificates", new TableIndex({ name, columnNames }));

    // csrs_status (status alone) is a prefix of the ordered index that replaces it.
    await q.dropIndex("certificate_signing_requests", "csrs_status");
    const csrIndexes: Array<[string, string[]]> = [
      ["csrs_status_submitted", ["status", "submittedAt", "id"]],
      ["csrs_kind_submitted", ["kind", "submittedAt", "id"]],
      ["csrs_env_submitted", ["environment", "submittedAt", "id"]],
      ["csrs_org_status_submitted", ["organizationId", "status", "submittedAt", "id"]],
    ];
    for (const [name, columnNames] of csrIndexes) await q.createIndex("certificate_signing_requests", new TableIndex({ name, columnNames }));

    await q.createIndex("notifications", new TableIndex({ name: "notifications_type", columnNames: ["type", "id"] }));

    await q.createTable(
      new Table({
        name: "certificate_tallies",
        columns: [
          { ...ref("organizationId"), isPrimary: true },
          { ...text("environment", 16), isPrimary: true },
          { ...text("kind", 16), isPrimary: true },
          { ...text("lifecycle", 16), isPrimary: true },
          // YYYY-MM-DD of notAfter for ACTIVE; '' for EXPIRED and REVOKED.
          { ...text("expiryDay", 10), isPrimary: true },
          tallyCount(),
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: "csr_tallies",
        columns: [
          { ...ref("organizationId"), isPrimary: true },
          { ...text("environment", 16), isPrimary: true },
          { ...text("kind", 16), isPrimary: true },
          { ...text("status", 16), isPrimary: true },
          tallyCount(),
        ],
      }),
    );
    const day = `CASE WHEN "lifecycle" = 'ACTIVE' THEN substr("notAfter", 1, 10) ELSE '' END`;
    for (const org of [`"organizationId"`, `'*'`]) {
      await q.query(
        `INSERT INTO "certificate_tallies" ("organizationId", "environment", "kind", "lifecycle", "expiryDay", "n")
         SELECT ${org}, "environment", "kind", "lifecycle", ${day}, COUNT(*) FROM "certificates" GROUP BY 1, 2, 3, 4, 5`,
      );
      await q.query(
        `INSERT INTO "csr_tallies" ("organizationId", "environment", "kind", "status", "n")
         SELECT ${org}, "environment", "kind", "status", COUNT(*) FROM "certificate_signing_requests" GROUP BY 1, 2, 3, 4`,
      );
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable("csr_tallies", true);
    await q.dropTable("certificate_tallies", true);
    await q.dropIndex("notifications", "notifications_type");
    for (const name of ["csrs_status_submitted", "csrs_kind_submitted", "csrs_env_submitted", "csrs_org_status_submitted"]) {
      await q.dropIndex("certificate_signing_requests", name);
    }
    await q.createIndex("certificate_signing_requests", new TableIndex({ name: "csrs_status", columnNames: ["status"] }));
    for (const name of [
      "certificates_env_created",
      "certificates_kind_created",
      "certificates_lifecycle_created",
      "certificates_org_lifecycle_created",
      "certificates_lifecycle_not_after",
      "certificates_org_lifecycle_not_after",
    ]) {
      await q.dropIndex("certificates", name);
    }
    await q.dropColumn("certificates", "lifecycle");
  }
}
