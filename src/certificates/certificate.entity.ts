import { Field, ID, ObjectType } from "type-graphql";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";
import { CertificateKind, CertificateStatus, Environment, RevocationReason } from "../kernel/domain.js";

@ObjectType("Certificate")
@Entity("certificates")
export class Certificate {
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

  @Field({ description: "Serial number, lowercase hex without separators." })
  @Column({ type: "varchar", length: 40 })
  serialNumber!: string;

  @Field()
  @Column({ type: "varchar", length: 1024 })
  subject!: string;

  @Field()
  @Column({ type: "varchar", length: 1024 })
  issuer!: string;

  @Field()
  @Column({ type: "varchar", length: 64 })
  commonName!: string;

  @Field()
  @Column({ type: "varchar", length: 16 })
  keyAlgorithm!: string;

  /** SHA-256 of the SPKI: what KEY_REUSE and compromise blocking compare. */
  @Column({ type: "varchar", length: 64 })
  publicKeyFingerprint!: string;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  notBefore!: Date;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  notAfter!: Date;

  @Field({ description: "SHA-256 of the DER certificate, lowercase hex." })
  @Column({ type: "varchar", length: 64 })
  fingerprintSha256!: string;

  /** The certificate, DER, base64. */
  @Column({ type: "text" })
  derBase64!: string;

  @Column({ type: "varchar", length: 36 })
  csrId!: string;

  @Field(() => Date, { nullable: true })
  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  revokedAt!: Date | null;

  @Field(() => RevocationReason, { nullable: true })
  @Column({ type: "varchar", length: 32, nullable: true })
  revocationReason!: RevocationReason | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  renewalOfId!: string | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  renewedById!: string | null;

  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  createdAt!: Date;

  /**
   * The status as stored, for indexes (docs/read-path.md): ACTIVE from
   * issuance until the lifecycle sweep marks it EXPIRED once notAfter has
   * passed, or REVOKED. The API's status is still derived from time.
   */
  @Column({ type: "varchar", length: 16, default: CertificateStatus.ACTIVE })
  lifecycle!: CertificateStatus;
}

/** Public keys that may never be certified again (reported compromised). */
@Entity("blocked_keys")
export class BlockedKey {
  @PrimaryColumn({ type: "varchar", length: 64 })
  publicKeyFingerprint!: string;

  @Column({ type: "varchar", length: 36, nullable: true })
  certificateId!: string | null;

  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  blockedAt!: Date;
}
