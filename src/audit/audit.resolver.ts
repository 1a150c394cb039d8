import { Arg, Ctx, Field, FieldResolver, Int, ObjectType, Query, Resolver, Root } from "type-graphql";
import { visibleOfficer } from "../officers/visibility.js";
import type { Context } from "../graphql/context.js";
import { integerCursor, PageInfo, pageOf, pageSize } from "../graphql/pagination.js";
import { Officer } from "../officers/officer.entity.js";
import type { AccessPolicy } from "../policy.js";
import { AuditEvent } from "./audit-event.entity.js";
import type { AuditLog } from "./audit.service.js";

@ObjectType()
export class AuditVerification {
  @Field()
  valid!: boolean;

  @Field(() => Int)
  checkedEvents!: number;

  @Field(() => Int, { nullable: true, description: "First seq whose hash does not match, when invalid." })
  firstInvalidSeq!: number | null;
}

@ObjectType()
export class AuditEventConnection {
  @Field(() => [AuditEvent])
  nodes!: AuditEvent[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@Resolver(() => AuditEvent)
export class AuditResolver {
  constructor(
    private readonly audit: AuditLog,
    private readonly policy: AccessPolicy,
  ) {}

  @Query(() => AuditEventConnection, { description: "Operators see every event; officers those about their own organization." })
  async auditLog(
    @Ctx() ctx: Context,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
    @Arg("first", () => Int, { defaultValue: 100, nullable: true }) first?: number,
  ): Promise<AuditEventConnection> {
    const viewer = this.policy.requireViewer(ctx.viewer);
    const size = pageSize(first, 100);
    const rows = await this.audit.page({
      organizationId: this.policy.isOperator(viewer) ? undefined : viewer.organization.id,
      afterSeq: integerCursor(after),
      first: size + 1,
    });
    return Object.assign(new AuditEventConnection(), pageOf(rows, size, (e) => String(e.seq)));
  }

  @Query(() => AuditVerification, { description: "Operators only: recompute the hash chain over the whole log." })
  async verifyAuditLog(@Ctx() ctx: Context): Promise<AuditVerification> {
    this.policy.requireOperator(ctx.viewer);
    return Object.assign(new AuditVerification(), await this.audit.verify());
  }

  @FieldResolver(() => Officer, { nullable: true, description: "Officer who acted; null for the system (scheduler, bootstrap)." })
  actor(@Root() event: AuditEvent, @Ctx() ctx: Context): Promise<Officer | null> {
    return visibleOfficer(ctx, this.policy, event.actorId);
  }
}
