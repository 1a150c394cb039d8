import { type MigrationInterface, type QueryRunner, TableColumn } from "typeorm";

/**
 * certificate_signing_requests.ignoredExtensions: the OIDs of the non-critical
 * extensions a request asked for and the profile does not grant, as a JSON
 * array (text on both databases). Rows from before are "[]": nothing was judged then.
 */
export class CsrIgnoredExtensions1764300001200 implements MigrationInterface {
  name = "CsrIgnoredExtensions1764300001200";

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn("certificate_signing_requests", new TableColumn({ name: "ignoredExtensions", type: "text", isNullable: false, default: "'[]'" }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn("certificate_signing_requests", "ignoredExtensions");
  }
}
