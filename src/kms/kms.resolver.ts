import DataLoader from "dataloader";
import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from "type-graphql";
import { CertificateStatus, Environment, KmsCertificatePurpose } from "../kernel/domain.js";
import { byId, type Context } from "../graphql/context.js";
import { Notification } from "../notifications/notification.entity.js";
import { Officer } from "../officers/officer.entity.js";
import { KmsCertificate } from "./kms-certificate.entity.js";
import { KmsRotationApproval } from "./kms-rotation-approval.entity.js";
import type { KmsService } from "./kms.service.js";

@Resolver(() => KmsCertificate)
export class KmsCertificateResolver {
  constructor(private readonly kms: KmsService) {}

  @Query(() => [KmsCertificate], { description: "The KMS's own certificates for the environment, current first; every authenticated viewer may read them." })
  kmsCertificates(
    @Ctx() ctx: Context,
    @Arg("environment", () => Environment) environment: Environment,
    @Arg("purpose", () => KmsCertificatePurpose, { nullable: true }) purpose?: KmsCertificatePurpose | null,
  ): Promise<KmsCertificate[]> {
    return this.kms.list(ctx.viewer, environment, purpose);
  }

  @Mutation(() => KmsCertificate, {
    description:
      "Operators only: issue a new KMS certificate for the purpose and environment from a new KMS key; it becomes current, the previous one stays valid (overlap) until it expires or is retired. Under dual control only after another operator's approveKmsRotation.",
  })
  rotateKmsCertificate(
    @Ctx() ctx: Context,
    @Arg("environment", () => Environment) environment: Environment,
    @Arg("purpose", () => KmsCertificatePurpose) purpose: KmsCertificatePurpose,
    @Arg("validityDays", () => Int, { nullable: true }) validityDays?: number | null,
  ): Promise<KmsCertificate> {
    return this.kms.rotate(ctx.viewer, { environment, purpose, validityDays });
  }

  @Mutation(() => KmsRotationApproval, {
    description:
      "Operators only, in an environment under dual control: approve the next rotation of this KMS certificate; a different operator then calls rotateKmsCertificate within 24 hours (PRECONDITION_FAILED / SECOND_APPROVAL_REQUIRED without it, SAME_OPERATOR for the approver).",
  })
  approveKmsRotation(
    @Ctx() ctx: Context,
    @Arg("environment", () => Environment, { description: "An environment under dual control (KEYPORTAL_DUAL_CONTROL)." }) environment: Environment,
    @Arg("purpose", () => KmsCertificatePurpose, { description: "Which of the KMS's certificates may be rotated next." }) purpose: KmsCertificatePurpose,
  ): Promise<KmsRotationApproval> {
    return this.kms.approveRotation(ctx.viewer, environment, purpose);
  }

  @Mutation(() => KmsCertificate, { description: "Operators only: end a non-current KMS certificate's overlap now." })
  retireKmsCertificate(@Ctx() ctx: Context, @Arg("id", () => ID) id: string): Promise<KmsCertificate> {
    return this.kms.retire(ctx.viewer, id);
  }

  @FieldResolver(() => CertificateStatus, { description: "ACTIVE in the valid set; EXPIRED past notAfter; REVOKED once retired." })
  status(@Root() certificate: KmsCertificate): CertificateStatus {
    return this.kms.status(certificate);
  }

  @FieldResolver(() => String, { description: "The certificate, PEM." })
  pem(@Root() certificate: KmsCertificate): string {
    return this.kms.pem(certificate);
  }

  @FieldResolver(() => String, { description: "The certificate followed by the issuing CA and root, PEM." })
  chainPem(@Root() certificate: KmsCertificate): string {
    return this.kms.chainPem(certificate);
  }
}

/**
 * Notification.kmsCertificate: the KMS certificate a KMS_CERTIFICATE_PUBLISHED
 * (or a KMS certificate's CERTIFICATE_EXPIRING) is about, so that a subscriber
 * gets the new certificate with the announcement. No tenancy to decide: the
 * certificate is readable by every authenticated viewer, and whoever sees the
 * notification is one.
 */
@Resolver(() => Notification)
export class NotificationKmsCertificateResolver {
  constructor(private readonly kms: KmsService) {}

  @FieldResolver(() => KmsCertificate, { nullable: true, description: "The KMS certificate the notification is about (KMS_CERTIFICATE_PUBLISHED), with its PEM." })
  kmsCertificate(@Root() notification: Notification, @Ctx() ctx: Context): Promise<KmsCertificate | null> | null {
    if (!notification.kmsCertificateId) return null;
    const loader = ctx.loaders.lazy("kmsCertificate", () => new DataLoader(byId((ids) => this.kms.byIds(ids))));
    return loader.load(notification.kmsCertificateId);
  }
}

@Resolver(() => KmsRotationApproval)
export class KmsRotationApprovalResolver {
  @FieldResolver(() => Officer, { description: "The operator who approved." })
  async approvedBy(@Root() approval: KmsRotationApproval, @Ctx() ctx: Context): Promise<Officer> {
    const officer = await ctx.loaders.officer.load(approval.approvedById);
    if (!officer) throw new Error(`approver of KMS rotation approval ${approval.id} is missing`);
    return officer;
  }
}
