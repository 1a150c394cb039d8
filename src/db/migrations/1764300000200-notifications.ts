import { type MigrationInterface, type QueryRunner, Table, TableIndex } from "typeorm";
import { instantColumn as instant, textColumn as text } from "./columns.js";

/** Email deliveries (one row per notification and recipient) and the indexes the notification feed reads by. */
export class Notifications1764300000200 implements MigrationInterface {
  name = "Notifications1764300000200";

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: "email_deliveries",
        columns: [
          { name: "id", type: "varchar", length: "36", isPrimary: true },
          { name: "notificationId", type: "integer" },
          text("recipient", 254),
          text("subject", 300),
          { name: "body", type: "text" },
          text("status", 16),
          { name: "attempts", type: "integer", default: 0 },
          instant("nextAttemptAt"),
          // A worker's claim: while claimedUntil is in the future no other worker sends the row.
          instant("claimedUntil", true),
          text("claimedBy", 36, true),
          text("lastError", 500, true),
          instant("sentAt", true),
          text("messageId", 300, true),
          instant("createdAt"),
        ],
        foreignKeys: [{ columnNames: ["notificationId"], referencedTableName: "notifications", referencedColumnNames: ["id"] }],
        indices: [
          { name: "email_deliveries_notification_recipient_unique", columnNames: ["notificationId", "recipient"], isUnique: true },
          { name: "email_deliveries_due", columnNames: ["status", "nextAttemptAt"] },
        ],
      }),
    );
    // Visibility reads: rows of a viewer's organization (existing index), rows naming it second, and audience rows.
    await q.createIndex("notifications", new TableIndex({ name: "notifications_second_org", columnNames: ["secondOrganizationId", "id"] }));
    await q.createIndex("notifications", new TableIndex({ name: "notifications_audience", columnNames: ["audience", "id"] }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex("notifications", "notifications_audience");
    await q.dropIndex("notifications", "notifications_second_org");
    await q.dropTable("email_deliveries", true);
  }
}
