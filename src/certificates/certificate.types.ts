import { Field, ID, InputType, Int, ObjectType } from "type-graphql";
import { CertificateKind, CertificateStatus, Environment } from "../kernel/domain.js";
import { connectionTypes } from "../graphql/connection.js";
import { Certificate } from "./certificate.entity.js";

@InputType()
export class CertificateFilter {
  @Field(() => ID, { nullable: true })
  organizationId?: string | null;

  @Field(() => CertificateKind, { nullable: true })
  kind?: CertificateKind | null;

  @Field(() => Environment, { nullable: true })
  environment?: Environment | null;

  @Field(() => CertificateStatus, { nullable: true })
  status?: CertificateStatus | null;

  @Field(() => Int, {
    nullable: true,
    description: "Active certificates whose notAfter is within this many days from now. With it the list is ordered soonest to expire first; without it, newest first.",
  })
  expiringWithinDays?: number | null;
}

@ObjectType("CertificateProfile", { description: "What a CSR of one kind must satisfy; drives the CSR web form." })
export class CertificateProfileType {
  @Field(() => CertificateKind)
  kind!: CertificateKind;

  @Field(() => [String], { description: "Accepted key algorithms, e.g. RSA-2048, RSA-3072, RSA-4096, EC-P256, EC-P384." })
  allowedKeyAlgorithms!: string[];

  @Field(() => [String], { description: "Subject attributes that must be present, e.g. CN, O, C." })
  requiredSubjectAttributes!: string[];

  @Field(() => [String], { description: "Subject attributes that may be present at all." })
  allowedSubjectAttributes!: string[];

  @Field(() => [String])
  keyUsage!: string[];

  @Field(() => [String])
  extendedKeyUsage!: string[];

  @Field(() => Int)
  defaultValidityDays!: number;

  @Field(() => Int)
  maxValidityDays!: number;
}

export const { Connection: CertificateConnection } = connectionTypes(Certificate, "CertificateConnection", "CertificateEdge");
