import { Field, InputType, ObjectType } from "type-graphql";
import { OrganizationKind, Role } from "../kernel/domain.js";
import { Officer } from "../officers/officer.entity.js";
import { Organization } from "./organization.entity.js";

@InputType()
export class CreateOrganizationInput {
  @Field()
  name!: string;

  @Field(() => OrganizationKind)
  kind!: OrganizationKind;

  @Field()
  contactEmail!: string;

  @Field()
  country!: string;
}

@ObjectType("Viewer")
export class ViewerType {
  @Field(() => Officer)
  officer!: Officer;

  @Field(() => Organization)
  organization!: Organization;

  @Field(() => Role)
  role!: Role;
}
