import { Arg, Ctx, FieldResolver, ID, Mutation, Resolver, Root } from "type-graphql";
import type { Context } from "../graphql/context.js";
import { Organization } from "../organizations/organization.entity.js";
import { Officer } from "./officer.entity.js";
import type { OfficerService } from "./officer.service.js";
import { ApiTokenGrant, RegisterOfficerInput } from "./officer.types.js";

@Resolver(() => Officer)
export class OfficerResolver {
  constructor(private readonly officers: OfficerService) {}

  @Mutation(() => Officer, { description: "Operators, or an active officer of the same organization." })
  registerOfficer(@Ctx() ctx: Context, @Arg("input", () => RegisterOfficerInput) input: RegisterOfficerInput): Promise<Officer> {
    return this.officers.register(ctx.viewer, input);
  }

  @Mutation(() => Officer, { description: "Operators, or another active officer of the same organization." })
  deactivateOfficer(@Ctx() ctx: Context, @Arg("officerId", () => ID) officerId: string): Promise<Officer> {
    return this.officers.deactivate(ctx.viewer, officerId);
  }

  @Mutation(() => ApiTokenGrant, { description: "An officer for themself, or an operator for anyone." })
  async createApiToken(
    @Ctx() ctx: Context,
    @Arg("officerId", () => ID) officerId: string,
    @Arg("label", () => String) label: string,
  ): Promise<ApiTokenGrant> {
    return Object.assign(new ApiTokenGrant(), await this.officers.createApiToken(ctx.viewer, officerId, label));
  }

  @Mutation(() => Boolean)
  revokeApiToken(@Ctx() ctx: Context, @Arg("tokenId", () => ID) tokenId: string): Promise<boolean> {
    return this.officers.revokeApiToken(ctx.viewer, tokenId);
  }

  /** The officer is already visible to the viewer, and so is its organization. */
  @FieldResolver(() => Organization)
  async organization(@Root() officer: Officer, @Ctx() ctx: Context): Promise<Organization> {
    const org = await ctx.loaders.organization.load(officer.organizationId);
    if (!org) throw new Error(`organization ${officer.organizationId} of officer ${officer.id} is missing`);
    return org;
  }
}
