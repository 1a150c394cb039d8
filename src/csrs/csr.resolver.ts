import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from "type-graphql";
import { Certificate } from "../certificates/certificate.entity.js";
import { CsrConnection, CsrFilter, RenewCertificateInput, SignCsrInput, SubmitCsrInput } from "./csr.types.js";
import type { Context } from "../graphql/context.js";
import { Officer } from "../officers/officer.entity.js";
import { Organization } from "../organizations/organization.entity.js";
import { requiredVisibleOfficer, visibleOfficer } from "../officers/visibility.js";
import type { AccessPolicy } from "../policy.js";
import { CertificateSigningRequest } from "./csr.entity.js";
import type { CsrService } from "./csr.service.js";

@Resolver(() => CertificateSigningRequest)
export class CsrResolver {
  constructor(
    private readonly csrs: CsrService,
    private readonly policy: AccessPolicy,
  ) {}

  @Query(() => CertificateSigningRequest, { nullable: true })
  certificateSigningRequest(@Ctx() ctx: Context, @Arg("id", () => ID) id: string): Promise<CertificateSigningRequest | null> {
    return this.csrs.get(ctx.viewer, id);
  }

  @Query(() => CsrConnection)
  async certificateSigningRequests(
    @Ctx() ctx: Context,
    @Arg("filter", () => CsrFilter, { nullable: true }) filter?: CsrFilter | null,
    @Arg("first", () => Int, { defaultValue: 50, nullable: true }) first?: number,
    @Arg("after", () => String, { nullable: true }) after?: string | null,
  ): Promise<InstanceType<typeof CsrConnection>> {
    return new CsrConnection(await this.csrs.list(ctx.viewer, filter, first, after));
  }

  @Mutation(() => CertificateSigningRequest, {
    description: "An active officer of the organization, or of an MSP with an active delegation for that kind and environment.",
  })
  submitCsr(@Ctx() ctx: Context, @Arg("input", () => SubmitCsrInput) input: SubmitCsrInput): Promise<CertificateSigningRequest> {
    return this.csrs.submit(ctx.viewer, input);
  }

  @Mutation(() => CertificateSigningRequest, { description: "A new CSR that renews an existing certificate; allowed at any time before or after expiry." })
  renewCertificate(@Ctx() ctx: Context, @Arg("input", () => RenewCertificateInput) input: RenewCertificateInput): Promise<CertificateSigningRequest> {
    return this.csrs.renew(ctx.viewer, input);
  }

  @Mutation(() => CertificateSigningRequest, { description: "The submitter's organization, while PENDING." })
  cancelCsr(@Ctx() ctx: Context, @Arg("csrId", () => ID) csrId: string): Promise<CertificateSigningRequest> {
    return this.csrs.cancel(ctx.viewer, csrId);
  }

  @Mutation(() => CertificateSigningRequest, {
    description: "Operators only, under dual control: the first operator's approval of a PENDING request; a different operator then signs it.",
  })
  approveCsr(@Ctx() ctx: Context, @Arg("csrId", () => ID, { description: "A PENDING request in an environment under dual control." }) csrId: string): Promise<CertificateSigningRequest> {
    return this.csrs.approve(ctx.viewer, csrId);
  }

  @Mutation(() => Certificate, {
    description:
      "Operators only. Issues the certificate; exactly once per CSR. Under dual control only after another operator approved the request (PRECONDITION_FAILED / SECOND_APPROVAL_REQUIRED; SAME_OPERATOR when the approver signs).",
  })
  signCsr(@Ctx() ctx: Context, @Arg("input", () => SignCsrInput) input: SignCsrInput): Promise<Certificate> {
    return this.csrs.sign(ctx.viewer, input);
  }

  @Mutation(() => CertificateSigningRequest, { description: "Operators only." })
  rejectCsr(
    @Ctx() ctx: Context,
    @Arg("csrId", () => ID) csrId: string,
    @Arg("reason", () => String) reason: string,
  ): Promise<CertificateSigningRequest> {
    return this.csrs.reject(ctx.viewer, csrId, reason);
  }

  @FieldResolver(() => Organization)
  async organization(@Root() csr: CertificateSigningRequest, @Ctx() ctx: Context): Promise<Organization> {
    const org = await ctx.loaders.organization.load(csr.organizationId);
    if (!org) throw new Error(`organization of CSR ${csr.id} is missing`);
    return org;
  }

  @FieldResolver(() => Officer)
  submittedBy(@Root() csr: CertificateSigningRequest, @Ctx() ctx: Context): Promise<Officer> {
    return requiredVisibleOfficer(ctx, this.policy, csr.submittedById, "submitter");
  }

  @FieldResolver(() => Officer, { nullable: true })
  decidedBy(@Root() csr: CertificateSigningRequest, @Ctx() ctx: Context): Promise<Officer | null> {
    return visibleOfficer(ctx, this.policy, csr.decidedById);
  }

  @FieldResolver(() => [Officer], {
    description: "Operators who approved this request under dual control; empty where its environment needs no second approval.",
  })
  async approvals(@Root() csr: CertificateSigningRequest, @Ctx() ctx: Context): Promise<Officer[]> {
    const approver = await visibleOfficer(ctx, this.policy, csr.approvedById);
    return approver ? [approver] : [];
  }

  @FieldResolver(() => Certificate, { nullable: true, description: "The certificate this request renews, if any." })
  renewalOf(@Root() csr: CertificateSigningRequest, @Ctx() ctx: Context): Promise<Certificate | null> | null {
    return csr.renewalOfId ? ctx.loaders.certificate.load(csr.renewalOfId) : null;
  }

  @FieldResolver(() => Certificate, { nullable: true, description: "The certificate issued from this request, once SIGNED." })
  certificate(@Root() csr: CertificateSigningRequest, @Ctx() ctx: Context): Promise<Certificate | null> | null {
    return csr.certificateId ? ctx.loaders.certificate.load(csr.certificateId) : null;
  }
}
