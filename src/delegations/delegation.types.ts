import { Field, ID, InputType } from "type-graphql";
import { CertificateKind, Environment } from "../kernel/domain.js";

@InputType()
export class RequestDelegationInput {
  @Field(() => ID)
  participantId!: string;

  @Field(() => ID)
  mspId!: string;

  @Field(() => [CertificateKind])
  kinds!: CertificateKind[];

  @Field(() => Environment)
  environment!: Environment;

  @Field(() => String, { nullable: true })
  note?: string | null;
}
