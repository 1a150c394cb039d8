import { Field, ID, ObjectType } from "type-graphql";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";
import { Environment, KmsCertificatePurpose } from "../kernel/domain.js";

/**
 * A certificate of the KMS's own, with the label of its key in the key store.
 * The key stays in the store (files or PKCS#11); this row holds only public
 * material. At most one row per environment and purpose is `current`
 * (a partial unique index); older rows stay valid until notAfter or
 * retirement (the overlap participants need to switch over).
 */
@ObjectType("KmsCertificate", { description: "A certificate of the KMS's own, published to participants: the other half of the key exchange." })
@Entity("kms_certificates")
export class KmsCertificate {
  @Field(() => ID)
  @PrimaryColumn({ type: "varchar", length: 36 })
  id!: string;

  @Field(() => Environment)
  @Column({ type: "varchar", length: 16 })
  environment!: Environment;

  @Field(() => KmsCertificatePurpose)
  @Column({ type: "varchar", length: 24 })
  purpose!: KmsCertificatePurpose;

  /** Label of the key pair in the key store, e.g. kms-mtf-message_signing-2. Not part of the API. */
  @Column({ type: "varchar", length: 64 })
  keyLabel!: string;

  /** EC-P256, RSA-2048, ...: what the key store is asked for when the key is opened again. */
  @Column({ type: "varchar", length: 16 })
  keyAlgorithm!: string;

  @Field({ description: "Key identifier participants quote in messages (e.g. a JWS/JWE kid): SHA-256 of the SPKI, lowercase hex." })
  @Column({ type: "varchar", length: 64 })
  keyId!: string;

  @Field({ description: "True for the certificate to use for new messages; older ones stay valid until notAfter or retirement (overlap)." })
  @Column({ type: "boolean" })
  current!: boolean;

  @Field()
  @Column({ type: "varchar", length: 40 })
  serialNumber!: string;

  @Field()
  @Column({ type: "varchar", length: 1024 })
  subject!: string;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  notBefore!: Date;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  notAfter!: Date;

  @Field()
  @Column({ type: "varchar", length: 64 })
  fingerprintSha256!: string;

  /** The certificate, DER, base64. */
  @Column({ type: "text" })
  derBase64!: string;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  publishedAt!: Date;

  /** Set by retireKmsCertificate: the certificate left the valid set before its notAfter. */
  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  retiredAt!: Date | null;

  @Column({ type: "varchar", length: 36, nullable: true })
  retiredById!: string | null;

  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  createdAt!: Date;
}
