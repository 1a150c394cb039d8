import { Field, ID, InputType, ObjectType } from "type-graphql";
import { Officer } from "./officer.entity.js";

@InputType()
export class RegisterOfficerInput {
  @Field(() => ID)
  organizationId!: string;

  @Field()
  name!: string;

  @Field()
  email!: string;
}

@ObjectType()
export class ApiTokenGrant {
  @Field(() => ID)
  id!: string;

  @Field({ description: "The secret; shown once, stored only as a hash." })
  token!: string;

  @Field(() => Officer)
  officer!: Officer;

  @Field()
  label!: string;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: "When the token stops working; null for no expiry." })
  expiresAt!: Date | null;
}
