import { Field, ID, ObjectType } from "type-graphql";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";
import { OfficerStatus, Role } from "../kernel/domain.js";

@ObjectType()
@Entity("officers")
export class Officer {
  @Field(() => ID)
  @PrimaryColumn({ type: "varchar", length: 36 })
  id!: string;

  @Column({ type: "varchar", length: 36 })
  organizationId!: string;

  @Field()
  @Column({ type: "varchar", length: 200 })
  name!: string;

  @Field()
  @Column({ type: "varchar", length: 254 })
  email!: string;

  @Field(() => Role)
  @Column({ type: "varchar", length: 24 })
  role!: Role;

  @Field(() => OfficerStatus)
  @Column({ type: "varchar", length: 16 })
  status!: OfficerStatus;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  createdAt!: Date;

  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  deactivatedAt!: Date | null;

  /** When the officer redeemed an enrollment code (for the bootstrap operator: when it was created). */
  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  enrolledAt!: Date | null;
}
