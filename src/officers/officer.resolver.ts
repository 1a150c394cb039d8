import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Resolver, Root } from "type-graphql";
import type { Context } from "../graphql/context.js";
import { Organization } from "../organizations/organization.entity.js";
import { Officer } from "./officer.entity.js";
import type { OfficerService } from "./officer.service.js";
import { ApiTokenGrant, RegisterOfficerInput } from "./officer.types.js";

@Resolver(() => Officer)
export class OfficerResolver {
  constructor(private readonly officers: OfficerService) {}

  @Mutation(() => Officer, {
    description: "Operators, or an active officer of the same organization. The new officer is emailed a one-time enrollment code; nobody else sees it.",
  })
  registerOfficer(@Ctx() ctx: Context, @Arg("input", () => RegisterOfficerInput) input: RegisterOfficerInput): Promise<Officer> {
    return this.officers.register(ctx.viewer, input);
  }

  @Mutation(() => Officer, { description: "Operators, or another active officer of the same organization." })
  deactivateOfficer(@Ctx() ctx: Context, @Arg("officerId", () => ID) officerId: string): Promise<Officer> {
    return this.officers.deactivate(ctx.viewer, officerId);
  }

  @Mutation(() => ApiTokenGrant, {
    description:
      "No token needed: exchanges a one-time enrollment code for the officer's first API token. A code works once, and only until it expires (ENROLLMENT_CODE_INVALID otherwise).",
  })
  async enrollOfficer(
    @Ctx() ctx: Context,
    @Arg("code", () => String, { description: "The code from the enrollment email (the line `Enrollment code: ...`)." }) code: string,
    @Arg("label", () => String, { description: "A name for the new token, e.g. the machine it will live on." }) label: string,
  ): Promise<ApiTokenGrant> {
    return Object.assign(new ApiTokenGrant(), await this.officers.enroll(ctx.clientAddress ?? "unknown", code, label));
  }

  @Mutation(() => Officer, {
    description:
      "Operators, or an active officer of the same organization: emails a fresh enrollment code to an officer who has not enrolled yet; earlier codes stop working.",
  })
  resendEnrollment(
    @Ctx() ctx: Context,
    @Arg("officerId", () => ID, { description: "An active officer who has not enrolled yet." }) officerId: string,
  ): Promise<Officer> {
    return this.officers.resendEnrollment(ctx.viewer, officerId);
  }

  @Mutation(() => ApiTokenGrant, { description: "An officer for themself only; nobody can create a token for somebody else." })
  async createApiToken(
    @Ctx() ctx: Context,
    @Arg("officerId", () => ID) officerId: string,
    @Arg("label", () => String) label: string,
    @Arg("expiresInDays", () => Int, { nullable: true, description: "The token stops working after this many days (1 to 3650); without it, it works until revoked." })
    expiresInDays?: number | null,
  ): Promise<ApiTokenGrant> {
    return Object.assign(new ApiTokenGrant(), await this.officers.createApiToken(ctx.viewer, officerId, label, expiresInDays));
  }

  @Mutation(() => Boolean)
  revokeApiToken(@Ctx() ctx: Context, @Arg("tokenId", () => ID) tokenId: string): Promise<boolean> {
    return this.officers.revokeApiToken(ctx.viewer, tokenId);
  }

  @FieldResolver(() => Boolean, {
    description: "True once the officer has redeemed an enrollment code (the bootstrap operator is enrolled from the start).",
  })
  enrolled(@Root() officer: Officer): boolean {
    return officer.enrolledAt != null;
  }

  /** The officer is already visible to the viewer, and so is its organization. */
  @FieldResolver(() => Organization)
  async organization(@Root() officer: Officer, @Ctx() ctx: Context): Promise<Organization> {
    const org = await ctx.loaders.organization.load(officer.organizationId);
    if (!org) throw new Error(`organization ${officer.organizationId} of officer ${officer.id} is missing`);
    return org;
  }
}
