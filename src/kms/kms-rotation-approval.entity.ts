import { Field, ID, ObjectType } from "type-graphql";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";
import { Environment, KmsCertificatePurpose } from "../kernel/domain.js";

/**
 * Under dual control: one operator's standing approval for the next rotation
 * of a KMS certificate (environment and purpose). A different operator's
 * rotateKmsCertificate uses it up; a newer approval replaces an older one.
 */
@ObjectType("KmsRotationApproval", {
  description: "An operator's approval of the next rotation of a KMS certificate, in an environment under dual control; a different operator then rotates.",
})
@Entity("kms_rotation_approvals")
export class KmsRotationApproval {
  @Field(() => ID, { description: "Identifies this approval." })
  @PrimaryColumn({ type: "varchar", length: 36 })
  id!: string;

  @Field(() => Environment, { description: "The environment of the KMS certificate whose rotation is approved." })
  @Column({ type: "varchar", length: 16 })
  environment!: Environment;

  @Field(() => KmsCertificatePurpose, { description: "The purpose of the KMS certificate whose rotation is approved." })
  @Column({ type: "varchar", length: 24 })
  purpose!: KmsCertificatePurpose;

  @Column({ type: "varchar", length: 36 })
  approvedById!: string;

  @Field(() => Date, { description: "When the operator approved." })
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  approvedAt!: Date;

  @Field(() => Date, { description: "The approval lapses unused at this instant (24 hours after approvedAt)." })
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  expiresAt!: Date;
}
