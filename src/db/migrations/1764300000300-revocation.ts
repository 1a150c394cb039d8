import { type MigrationInterface, type QueryRunner, Table } from "typeorm";

/**
 * The current CRL of each environment, shared by every instance: the
 * cRLNumber only grows, and each rebuild is a compare-and-swap on it.
 * One row per environment from the start (crlNumber 0, no CRL yet), so the
 * swap is always an UPDATE and never a racing INSERT.
 */
export class Revocation1764300000300 implements MigrationInterface {
  name = "Revocation1764300000300";

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: "crl_state",
        columns: [
          { name: "environment", type: "varchar", length: "16", isPrimary: true },
          { name: "crlNumber", type: "bigint" },
          { name: "thisUpdate", type: "varchar", length: "24", isNullable: true },
          { name: "nextUpdate", type: "varchar", length: "24", isNullable: true },
          { name: "derBase64", type: "text", isNullable: true },
        ],
      }),
    );
    for (const environment of ["MTF", "PRODUCTION"]) {
      await q.query(`INSERT INTO crl_state ("environment", "crlNumber") VALUES ('${environment}', 0)`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable("crl_state", true);
  }
}
