import DataLoader from "dataloader";
import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from "type-graphql";
import { OrganizationKind, Role } from "../kernel/domain.js";
import { forbidden } from "../kernel/errors.js";
import type { Context } from "../graphql/context.js";
import { Officer } from "../officers/officer.entity.js";
import { MIN_ACTIVE_OFFICERS, type OfficerService } from "../officers/officer.service.js";
import type { AccessPolicy } from "../policy.js";
import { Organization } from "./organization.entity.js";
import type { OrganizationService } from "./organization.service.js";
import { CreateOrganizationInput, ViewerType } from "./organization.types.js";

const OFFICERS_BY_ORG = "officersByOrganization";
const OFFICER_COUNTS_BY_ORG = "officerCountsByOrganization";

@Resolver(() => Organization)
export class OrganizationResolver {
  constructor(
    private readonly organizationService: OrganizationService,
    private readonly officerService: OfficerService,
    private readonly policy: AccessPolicy,
  ) {}

  @Query(() => ViewerType, { description: "The authenticated viewer." })
  me(@Ctx() ctx: Context): ViewerType {
    const viewer = this.policy.requireViewer(ctx.viewer);
    return Object.assign(new ViewerType(), { officer: viewer.officer, organization: viewer.organization, role: viewer.role });
  }

  @Query(() => [Organization], {
    description: "Operators see all organizations; officers their own and those linked by an active delegation.",
  })
  organizations(
    @Ctx() ctx: Context,
    @Arg("kind", () => OrganizationKind, { nullable: true }) kind?: OrganizationKind | null,
  ): Promise<Organization[]> {
    return this.organizationService.list(ctx.viewer, kind);
  }

  @Query(() => Organization, { nullable: true })
  organization(@Ctx() ctx: Context, @Arg("id", () => ID) id: string): Promise<Organization | null> {
    return this.organizationService.get(ctx.viewer, id);
  }

  @Mutation(() => Organization, { description: "Operators only." })
  createOrganization(@Ctx() ctx: Context, @Arg("input", () => CreateOrganizationInput) input: CreateOrganizationInput): Promise<Organization> {
    return this.organizationService.create(ctx.viewer, input);
  }

  /** Active officers of every organization on the page, in one query. */
  private officersOf(ctx: Context, organizationId: string, includeDeactivated: boolean): Promise<Officer[]> {
    const loader = ctx.loaders.lazy(
      `${OFFICERS_BY_ORG}:${includeDeactivated}`,
      () =>
        new DataLoader<string, Officer[]>(async (ids) => {
          const rows = await this.officerService.listForOrganizations(ids, includeDeactivated);
          return ids.map((id) => rows.filter((o) => o.organizationId === id));
        }),
    );
    return loader.load(organizationId);
  }

  /**
   * An organization can be reached from outside its tenancy (an audit event's
   * actor, a delegation's other party): its name may show, its people may not.
   */
  @FieldResolver(() => [Officer])
  async officers(
    @Root() org: Organization,
    @Ctx() ctx: Context,
    @Arg("includeDeactivated", () => Boolean, { defaultValue: false, nullable: true }) includeDeactivated: boolean | null,
  ): Promise<Officer[]> {
    const viewer = this.policy.requireViewer(ctx.viewer);
    const people = { organizationId: org.id, role: org.kind === OrganizationKind.KMS ? Role.KMS_OPERATOR : Role.SECURITY_OFFICER };
    if (!(await this.policy.canReadOrganization(viewer, org.id)) || !(await this.policy.canSeeOfficer(viewer, people))) {
      throw forbidden("the officers of another organization are not visible to this viewer");
    }
    return this.officersOf(ctx, org.id, includeDeactivated ?? false);
  }

  /** Active and enrolled officers of every organization on the page, counted in one query. */
  private countsOf(ctx: Context, organizationId: string): Promise<{ active: number; enrolled: number }> {
    const loader = ctx.loaders.lazy(
      OFFICER_COUNTS_BY_ORG,
      () =>
        new DataLoader<string, { active: number; enrolled: number }>(async (ids) => {
          const counts = await this.officerService.activeCounts(ids);
          return ids.map((id) => counts.get(id) ?? { active: 0, enrolled: 0 });
        }),
    );
    return loader.load(organizationId);
  }

  @FieldResolver(() => Int)
  async activeOfficerCount(@Root() org: Organization, @Ctx() ctx: Context): Promise<number> {
    return (await this.countsOf(ctx, org.id)).active;
  }

  @FieldResolver(() => Boolean, { description: "True when at least two security officers are active and enrolled: CSRs may be submitted." })
  async keyExchangeReady(@Root() org: Organization, @Ctx() ctx: Context): Promise<boolean> {
    return (await this.countsOf(ctx, org.id)).enrolled >= MIN_ACTIVE_OFFICERS;
  }
}
