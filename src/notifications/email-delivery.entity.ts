import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";

export enum EmailDeliveryStatus {
  PENDING = "PENDING",
  SENT = "SENT",
  /** Gave up after the last retry; kept for the operators to see. */
  FAILED = "FAILED",
}

/**
 * One email for one notification and one recipient. Written in the
 * transaction of the notification (so a rollback mails nothing), sent after
 * commit by the delivery worker, which records every attempt here.
 */
@Entity("email_deliveries")
export class EmailDelivery {
  @PrimaryColumn({ type: "varchar", length: 36 })
  id!: string;

  @Column({ type: "integer" })
  notificationId!: number;

  @Column({ type: "varchar", length: 254 })
  recipient!: string;

  @Column({ type: "varchar", length: 300 })
  subject!: string;

  @Column({ type: "text" })
  body!: string;

  @Column({ type: "varchar", length: 16 })
  status!: EmailDeliveryStatus;

  @Column({ type: "integer", default: 0 })
  attempts!: number;

  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  nextAttemptAt!: Date;

  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  claimedUntil!: Date | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  claimedBy!: string | null;

  /** What went wrong on the last attempt: an error code and message, never credentials. */
  @Column({ type: "varchar", length: 500, nullable: true })
  lastError!: string | null;

  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  sentAt!: Date | null;

  @Column({ type: "varchar", length: 300, nullable: true })
  messageId!: string | null;

  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  createdAt!: Date;
}
