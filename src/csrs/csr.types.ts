import { Field, ID, InputType, Int } from "type-graphql";
import { CertificateKind, CsrStatus, Environment } from "../kernel/domain.js";
import { connectionTypes } from "../graphql/connection.js";
import { CertificateSigningRequest } from "./csr.entity.js";

/** The CSR feature's GraphQL inputs and connection. */
@InputType()
export class CsrFilter {
  @Field(() => ID, { nullable: true })
  organizationId?: string | null;

  @Field(() => CsrStatus, { nullable: true })
  status?: CsrStatus | null;

  @Field(() => CertificateKind, { nullable: true })
  kind?: CertificateKind | null;

  @Field(() => Environment, { nullable: true })
  environment?: Environment | null;
}

@InputType()
export class SubmitCsrInput {
  @Field(() => ID, { description: "The organization the certificate is for; an MSP passes the participant's id." })
  organizationId!: string;

  @Field(() => CertificateKind)
  kind!: CertificateKind;

  @Field(() => Environment)
  environment!: Environment;

  @Field({ description: "PKCS#10 request, PEM." })
  pem!: string;
}

@InputType()
export class RenewCertificateInput {
  @Field(() => ID)
  certificateId!: string;

  @Field({ description: "A new PKCS#10 request with a fresh key, PEM." })
  pem!: string;
}

@InputType()
export class SignCsrInput {
  @Field(() => ID)
  csrId!: string;

  @Field(() => Int, { nullable: true, description: "Defaults to the profile's defaultValidityDays; at most maxValidityDays." })
  validityDays?: number | null;
}

export const { Connection: CsrConnection } = connectionTypes(CertificateSigningRequest, "CsrConnection", "CsrEdge");
