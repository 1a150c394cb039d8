import { type MigrationInterface, type QueryRunner, Table } from "typeorm";
import { idColumn as id, instantColumn as instant, refColumn as ref, textColumn as text } from "./columns.js";

/** CSRs, certificates, blocked keys and delegations. */
export class KeyExchange1764300000100 implements MigrationInterface {
  name = "KeyExchange1764300000100";

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: "delegations",
        columns: [
          id(),
          ref("participantId"),
          ref("mspId"),
          { name: "kinds", type: "text" },
          text("environment", 16),
          text("status", 24),
          ref("requestedById"),
          instant("requestedAt"),
          ref("decidedById", true),
          instant("decidedAt", true),
          text("note", 1000, true),
          text("declineReason", 1000, true),
          ref("revokedById", true),
          instant("revokedAt", true),
        ],
        foreignKeys: [
          { columnNames: ["participantId"], referencedTableName: "organizations", referencedColumnNames: ["id"] },
          { columnNames: ["mspId"], referencedTableName: "organizations", referencedColumnNames: ["id"] },
          { columnNames: ["requestedById"], referencedTableName: "officers", referencedColumnNames: ["id"] },
        ],
        indices: [
          { name: "delegations_msp", columnNames: ["mspId", "status"] },
          { name: "delegations_participant", columnNames: ["participantId", "status"] },
          // One open (pending or active) delegation per participant, MSP and environment.
          {
            name: "delegations_open_unique",
            columnNames: ["participantId", "mspId", "environment"],
            isUnique: true,
            where: `"status" IN ('PENDING_APPROVAL', 'ACTIVE')`,
          },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: "certificate_signing_requests",
        columns: [
          id(),
          ref("organizationId"),
          text("kind", 16),
          text("environment", 16),
          text("status", 16),
          text("subject", 1024),
          text("commonName", 64),
          text("keyAlgorithm", 16),
          text("publicKeyFingerprint", 64),
          { name: "pem", type: "text" },
          ref("submittedById"),
          instant("submittedAt"),
          ref("delegationId", true),
          ref("decidedById", true),
          instant("decidedAt", true),
          text("rejectionReason", 1000, true),
          ref("renewalOfId", true),
          ref("certificateId", true),
        ],
        foreignKeys: [
          { columnNames: ["organizationId"], referencedTableName: "organizations", referencedColumnNames: ["id"] },
          { columnNames: ["submittedById"], referencedTableName: "officers", referencedColumnNames: ["id"] },
          { columnNames: ["delegationId"], referencedTableName: "delegations", referencedColumnNames: ["id"] },
        ],
        indices: [
          { name: "csrs_org_submitted", columnNames: ["organizationId", "submittedAt", "id"] },
          { name: "csrs_submitted", columnNames: ["submittedAt", "id"] },
          { name: "csrs_status", columnNames: ["status"] },
          // A key may wait in at most one pending request.
          { name: "csrs_pending_key_unique", columnNames: ["publicKeyFingerprint"], isUnique: true, where: `"status" = 'PENDING'` },
          { name: "csrs_key", columnNames: ["publicKeyFingerprint"] },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: "certificates",
        columns: [
          id(),
          ref("organizationId"),
          text("kind", 16),
          text("environment", 16),
          text("serialNumber", 40),
          text("subject", 1024),
          text("issuer", 1024),
          text("commonName", 64),
          text("keyAlgorithm", 16),
          text("publicKeyFingerprint", 64),
          instant("notBefore"),
          instant("notAfter"),
          text("fingerprintSha256", 64),
          { name: "derBase64", type: "text" },
          ref("csrId"),
          instant("revokedAt", true),
          text("revocationReason", 32, true),
          ref("renewalOfId", true),
          ref("renewedById", true),
          instant("createdAt"),
        ],
        foreignKeys: [
          { columnNames: ["organizationId"], referencedTableName: "organizations", referencedColumnNames: ["id"] },
          { columnNames: ["csrId"], referencedTableName: "certificate_signing_requests", referencedColumnNames: ["id"] },
        ],
        indices: [
          { name: "certificates_serial_unique", columnNames: ["serialNumber"], isUnique: true },
          // Exactly one certificate per CSR, whatever the concurrency.
          { name: "certificates_csr_unique", columnNames: ["csrId"], isUnique: true },
          { name: "certificates_key", columnNames: ["publicKeyFingerprint"] },
          { name: "certificates_not_after", columnNames: ["notAfter"] },
          { name: "certificates_org_created", columnNames: ["organizationId", "createdAt", "id"] },
          { name: "certificates_created", columnNames: ["createdAt", "id"] },
          { name: "certificates_env_revoked", columnNames: ["environment", "revokedAt"] },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: "blocked_keys",
        columns: [{ name: "publicKeyFingerprint", type: "varchar", length: "64", isPrimary: true }, ref("certificateId", true), instant("blockedAt")],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ["blocked_keys", "certificates", "certificate_signing_requests", "delegations"]) await q.dropTable(table, true);
  }
}
