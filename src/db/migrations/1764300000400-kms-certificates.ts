import { type MigrationInterface, type QueryRunner, Table } from "typeorm";
import { instantColumn as instant, textColumn as text } from "./columns.js";

/** The KMS's own certificates (message signing, message encryption, TLS server) per environment. */
export class KmsCertificates1764300000400 implements MigrationInterface {
  name = "KmsCertificates1764300000400";

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: "kms_certificates",
        columns: [
          { name: "id", type: "varchar", length: "36", isPrimary: true },
          text("environment", 16),
          text("purpose", 24),
          text("keyLabel", 64),
          text("keyAlgorithm", 16),
          text("keyId", 64),
          { name: "current", type: "boolean" },
          text("serialNumber", 40),
          text("subject", 1024),
          instant("notBefore"),
          instant("notAfter"),
          text("fingerprintSha256", 64),
          { name: "derBase64", type: "text" },
          instant("publishedAt"),
          instant("retiredAt", true),
          text("retiredById", 36, true),
          instant("createdAt"),
        ],
        indices: [
          // At most one current certificate per environment and purpose, whatever the concurrency
          // (two instances starting at once, racing rotations). A bare boolean predicate reads the
          // same on PostgreSQL (boolean) and SQLite (0/1).
          { name: "kms_certificates_current_unique", columnNames: ["environment", "purpose"], isUnique: true, where: `"current"` },
          { name: "kms_certificates_serial_unique", columnNames: ["serialNumber"], isUnique: true },
          // A key is certified once: every rotation makes a new key under a new label.
          { name: "kms_certificates_key_label_unique", columnNames: ["keyLabel"], isUnique: true },
          { name: "kms_certificates_env_purpose", columnNames: ["environment", "purpose", "createdAt"] },
          { name: "kms_certificates_not_after", columnNames: ["notAfter"] },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable("kms_certificates", true);
  }
}
