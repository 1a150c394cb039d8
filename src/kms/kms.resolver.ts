import DataLoader from "dataloader";
import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from "type-graphql";
import { CertificateStatus, Environment, KmsCertificatePurpose } from "../domain.js";
import { byId, type Context } from "../graphql/context.js";
import { Notification } from "../notifications/notification.entity.js";
import { KmsCertificate } from "./kms-certificate.entity.js";
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
      "Operators only: issue a new KMS certificate for the purpose and environment from a new KMS key; it becomes current, the previous one stays valid (overlap) until it expires or is retired.",
  })
  rotateKmsCertificate(
    @Ctx() ctx: Context,
    @Arg("environment", () => Environment) environment: Environment,
    @Arg("purpose", () => KmsCertificatePurpose) purpose: KmsCertificatePurpose,
    @Arg("validityDays", () => Int, { nullable: true }) validityDays?: number | null,
  ): Promise<KmsCertificate> {
    return this.kms.rotate(ctx.viewer, { environment, purpose, validityDays });
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
