import { Arg, Ctx, Field, FieldResolver, Int, Mutation, ObjectType, Query, Resolver, Root, Subscription } from "type-graphql";
import type { SubscribeResolverData } from "type-graphql";
import { Certificate } from "../certificates/certificate.entity.js";
import { CertificateSigningRequest } from "../csrs/csr.entity.js";
import { Delegation } from "../delegations/delegation.entity.js";
import { NotificationType } from "../kernel/domain.js";
import { unauthenticated } from "../kernel/errors.js";
import { visibleOfficer } from "../officers/visibility.js";
import type { Context } from "../graphql/context.js";
import { PageInfo } from "../graphql/pagination.js";
import { Officer } from "../officers/officer.entity.js";
import { Organization } from "../organizations/organization.entity.js";
import type { AccessPolicy } from "../policy.js";
import { Notification } from "./notification.entity.js";
import { type NotificationService, subscriptionCursor } from "./notification.service.js";
import type { NotificationRefs } from "./refs.js";

@ObjectType()
export class NotificationConnection {
  @Field(() => [Notification])
  nodes!: Notification[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

interface SubscriptionArgs {
  after?: string | null;
  types?: NotificationType[] | null;
}

/** Subscription.notifications' source: the dispatcher of the instance the socket is connected to. */
function openNotificationFeed({ args, context }: SubscribeResolverData<unknown, SubscriptionArgs, Context>): AsyncIterable<Notification> {
  if (!context.viewer) throw unauthenticated();
  const feed = context.feeds?.notifications;
  if (!feed) throw new Error("subscriptions need a WebSocket context with the notification feed");
  return feed.open(context.viewer, { after: subscriptionCursor(args.after), types: args.types ?? null });
}

@Resolver(() => Notification)
export class NotificationResolver {
  constructor(
    private readonly notifications: NotificationService,
    private readonly policy: AccessPolicy,
    private readonly refs: NotificationRefs,
  ) {}

  @Query(() => NotificationConnection, { name: "notifications", description: "Notifications visible to the viewer, oldest first, after the cursor." })
  async notificationsPage(
    @Ctx() ctx: Context,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
    @Arg("first", () => Int, { defaultValue: 100, nullable: true }) first?: number | null,
    @Arg("types", () => [NotificationType], { nullable: true }) types?: NotificationType[] | null,
  ): Promise<NotificationConnection> {
    return Object.assign(new NotificationConnection(), await this.notifications.page(ctx.viewer, { after, first, types }));
  }

  @Subscription(() => Notification, {
    name: "notifications",
    description:
      "Live notifications visible to the viewer. With `after`, first replays every\nvisible notification after that cursor, in order, then continues live, with\nno gap and no duplicate.",
    subscribe: openNotificationFeed,
  })
  /** Declares the field and its arguments; each event is resolved to itself by graphql/schema.ts (resolveSubscriptionEvents). */
  notificationFeed(
    @Root() notification: Notification,
    @Arg("after", () => String, { nullable: true }) _after?: string | null,
    @Arg("types", () => [NotificationType], { nullable: true }) _types?: NotificationType[] | null,
  ): Notification {
    return notification;
  }

  @Mutation(() => Int, { description: "Operators only: run the expiry scan now instead of waiting for the schedule; returns notifications emitted." })
  runExpiryScan(@Ctx() ctx: Context): Promise<number> {
    return this.notifications.runExpiryScan(ctx.viewer);
  }

  /** The organization the notification is about; the KMS (the publisher) for audience notifications. */
  @FieldResolver(() => Organization)
  async organization(@Root() n: Notification, @Ctx() ctx: Context): Promise<Organization> {
    const id = n.organizationId ?? (await this.refs.kmsOrganization());
    const org = id ? await ctx.loaders.organization.load(id) : null;
    if (!org) throw new Error(`the organization of notification ${n.id} is missing`);
    return org;
  }

  @FieldResolver(() => Certificate, { nullable: true })
  async certificate(@Root() n: Notification, @Ctx() ctx: Context): Promise<Certificate | null> {
    if (!n.certificateId || !ctx.viewer) return null;
    const certificate = await ctx.loaders.certificate.load(n.certificateId);
    if (!certificate) return null;
    const scope = { organizationId: certificate.organizationId, kind: certificate.kind, environment: certificate.environment };
    return (await this.policy.canReadKeyMaterial(ctx.viewer, scope)) ? certificate : null;
  }

  @FieldResolver(() => CertificateSigningRequest, { nullable: true })
  async certificateSigningRequest(@Root() n: Notification, @Ctx() ctx: Context): Promise<CertificateSigningRequest | null> {
    if (!n.csrId || !ctx.viewer) return null;
    const csr = await ctx.loaders.csr.load(n.csrId);
    if (!csr) return null;
    return (await this.policy.canReadKeyMaterial(ctx.viewer, { organizationId: csr.organizationId, kind: csr.kind, environment: csr.environment }))
      ? csr
      : null;
  }

  @FieldResolver(() => Delegation, { nullable: true })
  async delegation(@Root() n: Notification, @Ctx() ctx: Context): Promise<Delegation | null> {
    if (!n.delegationId || !ctx.viewer) return null;
    const delegation = await ctx.loaders.delegation.load(n.delegationId);
    return delegation && this.policy.canReadDelegation(ctx.viewer, delegation) ? delegation : null;
  }

  @FieldResolver(() => Officer, { nullable: true })
  officer(@Root() n: Notification, @Ctx() ctx: Context): Promise<Officer | null> {
    return visibleOfficer(ctx, this.policy, n.officerId);
  }
}
