import { Field, ID, ObjectType } from "type-graphql";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant, jsonText } from "../db/columns.js";
import { CertificateKind, DelegationStatus, Environment } from "../kernel/domain.js";

/**
 * An MSP performing a participant's key exchange for some kinds in one
 * environment. PENDING_APPROVAL -> ACTIVE | DECLINED (the participant
 * decides); PENDING_APPROVAL | ACTIVE -> REVOKED. Only ACTIVE grants anything.
 */
@ObjectType("Delegation")
@Entity("delegations")
export class Delegation {
  @Field(() => ID)
  @PrimaryColumn({ type: "varchar", length: 36 })
  id!: string;

  @Column({ type: "varchar", length: 36 })
  participantId!: string;

  @Column({ type: "varchar", length: 36 })
  mspId!: string;

  @Field(() => [CertificateKind], { description: "Certificate kinds whose key exchange the MSP performs." })
  @Column({ type: "text", transformer: jsonText })
  kinds!: CertificateKind[];

  @Field(() => Environment)
  @Column({ type: "varchar", length: 16 })
  environment!: Environment;

  @Field(() => DelegationStatus)
  @Column({ type: "varchar", length: 24 })
  status!: DelegationStatus;

  @Column({ type: "varchar", length: 36 })
  requestedById!: string;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  requestedAt!: Date;

  @Column({ type: "varchar", length: 36, nullable: true })
  decidedById!: string | null;

  @Field(() => Date, { nullable: true })
  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  decidedAt!: Date | null;

  @Field(() => String, { nullable: true })
  @Column({ type: "varchar", length: 1000, nullable: true })
  note!: string | null;

  @Field(() => String, { nullable: true, description: "Why the participant declined, if it said." })
  @Column({ type: "varchar", length: 1000, nullable: true })
  declineReason!: string | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  revokedById!: string | null;

  @Field(() => Date, { nullable: true })
  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  revokedAt!: Date | null;
}
