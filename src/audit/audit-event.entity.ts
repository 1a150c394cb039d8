import { Field, Int, ObjectType } from "type-graphql";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { bigintNumber, isoInstant } from "../db/columns.js";

@ObjectType()
@Entity("audit_events")
export class AuditEvent {
  @Field(() => Int, { description: "Gapless sequence number, from 1." })
  @PrimaryColumn({ type: "bigint", transformer: bigintNumber })
  seq!: number;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  at!: Date;

  @Column({ type: "varchar", length: 36, nullable: true })
  actorId!: string | null;

  /** Organization the event is about, for officers' view of the log. */
  @Column({ type: "varchar", length: 36, nullable: true })
  organizationId!: string | null;

  @Field({ description: "e.g. csr.submit, csr.sign, certificate.revoke, delegation.approve." })
  @Column({ type: "varchar", length: 64 })
  action!: string;

  @Field({ description: "SUCCESS, or the error code of a refused attempt." })
  @Column({ type: "varchar", length: 32 })
  outcome!: string;

  @Field()
  @Column({ type: "varchar", length: 32 })
  targetType!: string;

  @Field(() => String, { nullable: true })
  @Column({ type: "varchar", length: 64, nullable: true })
  targetId!: string | null;

  @Field({ description: "JSON object with action-specific details; never holds secrets." })
  @Column({ type: "text" })
  details!: string;

  @Field()
  @Column({ type: "varchar", length: 64 })
  hash!: string;

  @Field()
  @Column({ type: "varchar", length: 64 })
  prevHash!: string;
}
