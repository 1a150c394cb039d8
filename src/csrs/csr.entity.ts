import { Field, ID, ObjectType } from "type-graphql";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant, jsonText } from "../db/columns.js";
import { CertificateKind, CsrStatus, Environment } from "../kernel/domain.js";

@ObjectType("CertificateSigningRequest")
@Entity("certificate_signing_requests")
export class CertificateSigningRequest {
  @Field(() => ID)
  @PrimaryColumn({ type: "varchar", length: 36 })
  id!: string;

  @Column({ type: "varchar", length: 36 })
  organizationId!: string;

  @Field(() => CertificateKind)
  @Column({ type: "varchar", length: 16 })
  kind!: CertificateKind;

  @Field(() => Environment)
  @Column({ type: "varchar", length: 16 })
  environment!: Environment;

  @Field(() => CsrStatus)
  @Column({ type: "varchar", length: 16 })
  status!: CsrStatus;

  @Field({ description: "Subject as an RFC 4514 string, e.g. CN=Acme Client,O=Acme Bank,C=GB." })
  @Column({ type: "varchar", length: 1024 })
  subject!: string;

  @Field()
  @Column({ type: "varchar", length: 64 })
  commonName!: string;

  @Field({ description: "e.g. RSA-2048 or EC-P256." })
  @Column({ type: "varchar", length: 16 })
  keyAlgorithm!: string;

  @Field({ description: "SHA-256 of the SubjectPublicKeyInfo, lowercase hex." })
  @Column({ type: "varchar", length: 64 })
  publicKeyFingerprint!: string;

  @Field()
  @Column({ type: "text" })
  pem!: string;

  @Column({ type: "varchar", length: 36 })
  submittedById!: string;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  submittedAt!: Date;

  /** Set when an MSP officer submitted it under a delegation. */
  @Column({ type: "varchar", length: 36, nullable: true })
  delegationId!: string | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  decidedById!: string | null;

  @Field(() => Date, { nullable: true })
  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  decidedAt!: Date | null;

  @Field(() => String, { nullable: true })
  @Column({ type: "varchar", length: 1000, nullable: true })
  rejectionReason!: string | null;

  /** The certificate this request renews. */
  @Column({ type: "varchar", length: 36, nullable: true })
  renewalOfId!: string | null;

  /** Under dual control: the operator who approved it first (a different operator signs). */
  @Column({ type: "varchar", length: 36, nullable: true })
  approvedById!: string | null;

  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  approvedAt!: Date | null;

  /** The certificate issued from it, once SIGNED. */
  @Column({ type: "varchar", length: 36, nullable: true })
  certificateId!: string | null;

  @Field(() => [String], {
    description:
      "Non-critical extensions the request asked for that the profile does not grant (critical ones are refused), as OIDs, e.g. 2.5.29.17.",
  })
  @Column({ type: "text", transformer: jsonText })
  ignoredExtensions!: string[];
}
