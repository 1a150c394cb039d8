import { Field, ID, Int, ObjectType } from "type-graphql";
import { Column, Entity } from "typeorm";
import { bigintNumber, isoInstant } from "../db/columns.js";
import { NotificationType } from "../kernel/domain.js";

/** Values of Notification.audience: who hears a notification that is about no single organization. */
export enum NotificationAudience {
  /** Every participant and MSP (KMS publications such as a rotated KMS certificate). */
  PARTICIPANTS_AND_MSPS = "PARTICIPANTS_AND_MSPS",
}

/**
 * A notification is also the outbox row: it is written in the transaction of
 * the change it announces, and published and mailed only after commit.
 */
@ObjectType()
@Entity("notifications")
export class Notification {
  /**
   * The order subscribers see: assigned after commit (docs/sequencer.md), so
   * null only on a row not yet sequenced, which nothing reads. Published as
   * the notification's id: the resume cursor.
   */
  @Field(() => ID, { name: "id", description: "Monotonically increasing; also the resume cursor for the subscription." })
  @Column({ type: "bigint", nullable: true, transformer: bigintNumber })
  position!: number;

  /** The row's key, assigned at insert (email deliveries refer to it); not the order rows commit in. */
  @Column({ type: "integer", primary: true, generated: "increment", transformer: bigintNumber })
  id!: number;

  @Field(() => NotificationType)
  @Column({ type: "varchar", length: 40 })
  type!: NotificationType;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  occurredAt!: Date;

  /** The organization the event is about (the participant for delegated work). */
  @Column({ type: "varchar", length: 36, nullable: true })
  organizationId!: string | null;

  /** A second organization that hears it too (the MSP of a delegation event). */
  @Column({ type: "varchar", length: 36, nullable: true })
  secondOrganizationId!: string | null;

  /** Set for notifications meant for everyone of a kind of organization (KMS publications): null otherwise. */
  @Column({ type: "varchar", length: 32, nullable: true })
  audience!: string | null;

  /** Certificate kind and environment the event concerns, so delegated MSP officers see only what they cover. */
  @Column({ type: "varchar", length: 16, nullable: true })
  certificateKind!: string | null;

  @Column({ type: "varchar", length: 16, nullable: true })
  environment!: string | null;

  @Field()
  @Column({ type: "text" })
  message!: string;

  @Column({ type: "varchar", length: 36, nullable: true })
  certificateId!: string | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  csrId!: string | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  delegationId!: string | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  officerId!: string | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  kmsCertificateId!: string | null;

  @Field(() => Int, { nullable: true, description: "Set on CERTIFICATE_EXPIRING: the reminder threshold reached, in days." })
  @Column({ type: "integer", nullable: true })
  daysUntilExpiry!: number | null;

  /** Unique key for events that must happen once (expiry reminders): e.g. "expiring:<certId>:120". */
  @Column({ type: "varchar", length: 120, nullable: true })
  dedupeKey!: string | null;
}
