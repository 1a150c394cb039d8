import { Arg, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from "type-graphql";
import { DelegationStatus } from "../kernel/domain.js";
import type { Context } from "../graphql/context.js";
import { Officer } from "../officers/officer.entity.js";
import { Organization } from "../organizations/organization.entity.js";
import { requiredVisibleOfficer, visibleOfficer } from "../officers/visibility.js";
import type { AccessPolicy } from "../policy.js";
import { Delegation } from "./delegation.entity.js";
import type { DelegationService } from "./delegation.service.js";
import { RequestDelegationInput } from "./delegation.types.js";

async function required<T>(value: Promise<T | null>, what: string): Promise<T> {
  const found = await value;
  if (!found) throw new Error(`${what} is missing`);
  return found;
}

@Resolver(() => Delegation)
export class DelegationResolver {
  constructor(
    private readonly service: DelegationService,
    private readonly policy: AccessPolicy,
  ) {}

  @Query(() => [Delegation], { description: "Operators see all; officers the delegations their organization granted (participant) or received (MSP)." })
  delegations(
    @Ctx() ctx: Context,
    @Arg("status", () => DelegationStatus, { nullable: true }) status?: DelegationStatus | null,
  ): Promise<Delegation[]> {
    return this.service.list(ctx.viewer, { status });
  }

  @Mutation(() => Delegation, { description: "Operators only (the implementation manager starts a delegation)." })
  requestDelegation(@Ctx() ctx: Context, @Arg("input", () => RequestDelegationInput) input: RequestDelegationInput): Promise<Delegation> {
    return this.service.request(ctx.viewer, input);
  }

  @Mutation(() => Delegation, { description: "An active officer of the participant." })
  approveDelegation(@Ctx() ctx: Context, @Arg("delegationId", () => ID) delegationId: string): Promise<Delegation> {
    return this.service.approve(ctx.viewer, delegationId);
  }

  @Mutation(() => Delegation, { description: "An active officer of the participant." })
  declineDelegation(
    @Ctx() ctx: Context,
    @Arg("delegationId", () => ID) delegationId: string,
    @Arg("reason", () => String, { nullable: true }) reason?: string | null,
  ): Promise<Delegation> {
    return this.service.decline(ctx.viewer, delegationId, reason);
  }

  @Mutation(() => Delegation, { description: "An officer of the participant, or an operator. The MSP loses access at once." })
  revokeDelegation(@Ctx() ctx: Context, @Arg("delegationId", () => ID) delegationId: string): Promise<Delegation> {
    return this.service.revoke(ctx.viewer, delegationId);
  }

  @FieldResolver(() => Organization)
  participant(@Root() delegation: Delegation, @Ctx() ctx: Context): Promise<Organization> {
    return required(ctx.loaders.organization.load(delegation.participantId), "participant");
  }

  @FieldResolver(() => Organization)
  msp(@Root() delegation: Delegation, @Ctx() ctx: Context): Promise<Organization> {
    return required(ctx.loaders.organization.load(delegation.mspId), "MSP");
  }

  // The officer fields follow AccessPolicy.canSeeOfficer: the MSP sees none of the participant's people.
  @FieldResolver(() => Officer)
  requestedBy(@Root() delegation: Delegation, @Ctx() ctx: Context): Promise<Officer> {
    return requiredVisibleOfficer(ctx, this.policy, delegation.requestedById, "requester");
  }

  @FieldResolver(() => Officer, { nullable: true })
  decidedBy(@Root() delegation: Delegation, @Ctx() ctx: Context): Promise<Officer | null> {
    return visibleOfficer(ctx, this.policy, delegation.decidedById);
  }

  @FieldResolver(() => Officer, { nullable: true })
  revokedBy(@Root() delegation: Delegation, @Ctx() ctx: Context): Promise<Officer | null> {
    return visibleOfficer(ctx, this.policy, delegation.revokedById);
  }
}

/** Organization.delegations: the organization's delegations, as far as the viewer may see them. */
@Resolver(() => Organization)
export class OrganizationDelegationsResolver {
  constructor(private readonly service: DelegationService) {}

  @FieldResolver(() => [Delegation], { description: "Delegations this organization granted (participant) or received (MSP)." })
  delegations(
    @Root() org: Organization,
    @Ctx() ctx: Context,
    @Arg("status", () => DelegationStatus, { nullable: true }) status?: DelegationStatus | null,
  ): Promise<Delegation[]> {
    return this.service.list(ctx.viewer, { status, organizationId: org.id });
  }
}
