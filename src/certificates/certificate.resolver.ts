import { Arg, Ctx, FieldResolver, ID, Int, Query, Resolver, Root } from "type-graphql";
import { CertificateStatus, Environment } from "../kernel/domain.js";
import type { Context } from "../graphql/context.js";
import { CertificateSigningRequest } from "../csrs/csr.entity.js";
import { Organization } from "../organizations/organization.entity.js";
import type { AccessPolicy } from "../policy.js";
import type { CsrService } from "../csrs/csr.service.js";
import { Certificate } from "./certificate.entity.js";
import type { CertificateService } from "./certificate.service.js";
import { CertificateConnection, CertificateFilter, CertificateProfileType } from "./certificate.types.js";
import { CsrConnection, CsrFilter } from "../csrs/csr.types.js";

async function required<T>(value: Promise<T | null>, what: string): Promise<T> {
  const found = await value;
  if (!found) throw new Error(`${what} is missing`);
  return found;
}

@Resolver(() => Certificate)
export class CertificateResolver {
  constructor(
    private readonly certificateService: CertificateService,
    private readonly csrs: CsrService,
    private readonly policy: AccessPolicy,
  ) {}

  @Query(() => [CertificateProfileType])
  certificateProfiles(@Ctx() ctx: Context): CertificateProfileType[] {
    this.policy.requireViewer(ctx.viewer);
    return Object.values(this.csrs.profiles()).map((p) => Object.assign(new CertificateProfileType(), p));
  }

  @Query(() => Certificate, { nullable: true })
  certificate(@Ctx() ctx: Context, @Arg("id", () => ID) id: string): Promise<Certificate | null> {
    return this.certificateService.get(ctx.viewer, id);
  }

  @Query(() => Certificate, { nullable: true })
  certificateBySerial(@Ctx() ctx: Context, @Arg("serialNumber", () => String) serialNumber: string): Promise<Certificate | null> {
    return this.certificateService.bySerial(ctx.viewer, serialNumber);
  }

  @Query(() => CertificateConnection)
  async certificates(
    @Ctx() ctx: Context,
    @Arg("filter", () => CertificateFilter, { nullable: true }) filter?: CertificateFilter | null,
    @Arg("first", () => Int, { defaultValue: 50, nullable: true }) first?: number,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
  ): Promise<InstanceType<typeof CertificateConnection>> {
    return new CertificateConnection(await this.certificateService.list(ctx.viewer, filter, first, after));
  }

  @Query(() => String, { description: "PEM chain (issuing CA, root) that issues certificates for the environment." })
  caChain(@Ctx() ctx: Context, @Arg("environment", () => Environment) environment: Environment): string {
    return this.certificateService.caChain(ctx.viewer, environment);
  }

  @FieldResolver(() => Organization)
  organization(@Root() certificate: Certificate, @Ctx() ctx: Context): Promise<Organization> {
    return required(ctx.loaders.organization.load(certificate.organizationId), "organization");
  }

  @FieldResolver(() => CertificateStatus, { description: "Derived from notBefore/notAfter/revocation at the server's current time." })
  status(@Root() certificate: Certificate): CertificateStatus {
    return this.certificateService.status(certificate);
  }

  @FieldResolver(() => String, { description: "The leaf certificate, PEM." })
  pem(@Root() certificate: Certificate): string {
    return this.certificateService.pem(certificate);
  }

  @FieldResolver(() => String, { description: "Leaf followed by the issuing CA and root, PEM." })
  chainPem(@Root() certificate: Certificate): string {
    return this.certificateService.chainPem(certificate);
  }

  @FieldResolver(() => String, { description: "The leaf certificate, DER, base64." })
  derBase64(@Root() certificate: Certificate): string {
    return certificate.derBase64;
  }

  @FieldResolver(() => String, { description: "Leaf and chain as a degenerate PKCS#7 (certs-only) bundle, DER, base64." })
  pkcs7Base64(@Root() certificate: Certificate): string {
    return Buffer.from(this.certificateService.pkcs7(certificate)).toString("base64");
  }

  @FieldResolver(() => CertificateSigningRequest)
  csr(@Root() certificate: Certificate, @Ctx() ctx: Context): Promise<CertificateSigningRequest> {
    return required(ctx.loaders.csr.load(certificate.csrId), "CSR");
  }

  /** Same organization, kind and environment as the certificate itself: visible to whoever sees it. */
  @FieldResolver(() => Certificate, { nullable: true, description: "The certificate this one renewed." })
  renewalOf(@Root() certificate: Certificate, @Ctx() ctx: Context): Promise<Certificate | null> | null {
    return certificate.renewalOfId ? ctx.loaders.certificate.load(certificate.renewalOfId) : null;
  }

  @FieldResolver(() => Certificate, { nullable: true, description: "The newer certificate that renewed this one, if any." })
  renewedBy(@Root() certificate: Certificate, @Ctx() ctx: Context): Promise<Certificate | null> | null {
    return certificate.renewedById ? ctx.loaders.certificate.load(certificate.renewedById) : null;
  }
}

/** Organization.certificates and Organization.certificateSigningRequests: the lists, restricted to one organization. */
@Resolver(() => Organization)
export class OrganizationKeyMaterialResolver {
  constructor(
    private readonly certificateService: CertificateService,
    private readonly csrs: CsrService,
  ) {}

  @FieldResolver(() => CertificateConnection)
  async certificates(
    @Root() org: Organization,
    @Ctx() ctx: Context,
    @Arg("filter", () => CertificateFilter, { nullable: true }) filter?: CertificateFilter | null,
    @Arg("first", () => Int, { defaultValue: 50, nullable: true }) first?: number,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
  ): Promise<InstanceType<typeof CertificateConnection>> {
    return new CertificateConnection(await this.certificateService.list(ctx.viewer, { ...filter, organizationId: org.id }, first, after));
  }

  @FieldResolver(() => CsrConnection)
  async certificateSigningRequests(
    @Root() org: Organization,
    @Ctx() ctx: Context,
    @Arg("filter", () => CsrFilter, { nullable: true }) filter?: CsrFilter | null,
    @Arg("first", () => Int, { defaultValue: 50, nullable: true }) first?: number,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
  ): Promise<InstanceType<typeof CsrConnection>> {
    return new CsrConnection(await this.csrs.list(ctx.viewer, { ...filter, organizationId: org.id }, first, after));
  }
}
