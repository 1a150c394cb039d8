import { randomUUID } from "node:crypto";
import { In, type EntityManager, IsNull, Not } from "typeorm";
import type { MutationScope, Mutations } from "../kernel/unit-of-work.js";
import type { Authorities } from "../certificates/authorities.js";
import { recordCertificateChanges, recordCsrChanges } from "../certificates/tallies.js";
import { ALL_ORGANIZATIONS, CsrTally } from "../certificates/tally.entity.js";
import { mergeKeysetPages, readableKeyMaterialBranches, restrictToReadableKeyMaterial } from "../certificates/visibility.js";
import { BlockedKey, Certificate } from "../certificates/certificate.entity.js";
import type { Clock } from "../kernel/clock.js";
import { isUniqueViolation } from "../kernel/driver.js";
import type { Database } from "../db/data-source.js";
import { Delegation } from "../delegations/delegation.entity.js";
import { KmsCertificate } from "../kms/kms-certificate.entity.js";
import { CertificateKind, CertificateStatus, CsrStatus, DelegationStatus, Environment, NotificationType, OfficerStatus, OrganizationKind } from "../kernel/domain.js";
import type { DualControl } from "../dual-control.js";
import { badInput, conflict, DomainError, forbidden, notFound, preconditionFailed } from "../kernel/errors.js";
import type { Page } from "../graphql/connection.js";
import { decodeKeysetCursor, encodeKeysetCursor, pageOf, pageSize } from "../graphql/pagination.js";
import { Officer } from "../officers/officer.entity.js";
import { MIN_ACTIVE_OFFICERS } from "../officers/officer.service.js";
import { Organization } from "../organizations/organization.entity.js";
import { rfc4514 } from "../pki/bundle.js";
import { parseCsr, type ParsedCsr } from "../pki/csr.js";
import { newSerialHex } from "../pki/issue.js";
import type { CertificateProfile } from "../pki/profiles.js";
import { certificateSpki, spkiFingerprint } from "../pki/key-identity.js";
import { sha256Hex, toBytes } from "../pki/spki.js";
import type { AccessPolicy, KeyMaterialScope } from "../policy.js";
import { freeText } from "../validation.js";
import type { Viewer } from "../viewer.js";
import { CertificateSigningRequest } from "./csr.entity.js";
import { DAY_MS } from "../kernel/time.js";

export interface SubmitCsr {
  organizationId: string;
  kind: CertificateKind;
  environment: Environment;
  pem: string;
}

export interface CsrFilter {
  organizationId?: string | null;
  status?: CsrStatus | null;
  kind?: CertificateKind | null;
  environment?: Environment | null;
}

export interface SignCsr {
  csrId: string;
  validityDays?: number | null;
}

const MAX_REJECTION_REASON = 1000;

/**
 * The registration authority: decides who may submit, sign, reject and
 * cancel requests, and asks the CA (pki/) to sign only what it has decided.
 */
export class CsrService {
  /** Canonical fingerprints of both environments' root and issuing CA keys (loaded once: they do not change while running). */
  private caKeys: Set<string> | undefined;
  /** KMS certificate id -> canonical fingerprint of its key; rows are immutable, rotation only adds rows. */
  private readonly kmsKeys = new Map<string, string>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly mutations: Mutations,
    private readonly authorities: Authorities,
    private readonly profileByKind: Record<CertificateKind, CertificateProfile>,
    private readonly dualControl: DualControl,
  ) {}

  profile(kind: CertificateKind): CertificateProfile {
    return this.profileByKind[kind];
  }

  profiles(): Record<CertificateKind, CertificateProfile> {
    return this.profileByKind;
  }

  async submit(viewer: Viewer | null, input: SubmitCsr): Promise<CertificateSigningRequest> {
    return this.mutations.run(
      {
        action: "csr.submit",
        targetType: "CertificateSigningRequest",
        organizationId: input.organizationId,
        actor: viewer,
        details: { organizationId: input.organizationId, kind: input.kind, environment: input.environment },
      },
      (scope) => this.createRequest(scope, viewer, input, null),
    );
  }

  /** A new request for the same organization, kind and environment as a certificate, with a fresh key. */
  async renew(viewer: Viewer | null, input: { certificateId: string; pem: string }): Promise<CertificateSigningRequest> {
    return this.mutations.run(
      {
        action: "certificate.renew",
        targetType: "Certificate",
        targetId: input.certificateId,
        actor: viewer,
        details: { certificateId: input.certificateId },
      },
      async (scope) => {
        const v = this.policy.requireViewer(viewer);
        const old = await scope.em.findOne(Certificate, { where: { id: input.certificateId } });
        if (!old || !(await this.policy.canReadKeyMaterial(v, old))) throw notFound("certificate");
        scope.audit.organizationId = old.organizationId;
        const csr = await this.createRequest(scope, viewer, { organizationId: old.organizationId, kind: old.kind, environment: old.environment, pem: input.pem }, old);
        scope.audit.details = { certificateId: old.id, csrId: csr.id, publicKeyFingerprint: csr.publicKeyFingerprint };
        return csr;
      },
    );
  }

  private async createRequest(
    scope: MutationScope,
    viewer: Viewer | null,
    input: SubmitCsr,
    renewalOf: Certificate | null,
  ): Promise<CertificateSigningRequest> {
    const { em, audit, notify } = scope;
    const v = this.policy.requireViewer(viewer);
    const org = await em.findOne(Organization, { where: { id: input.organizationId } });
    const target: KeyMaterialScope = { organizationId: input.organizationId, kind: input.kind, environment: input.environment };
    if (!org || !(await this.policy.canReadOrganization(v, org.id))) throw notFound("organization");
    let delegationId: string | null = null;
    if (!(await this.policy.canActOnKeyMaterial(v, target))) {
      if (this.policy.isOperator(v)) throw forbidden("KMS operators sign requests; the organization's officers submit them");
      throw new DomainError(
        "FORBIDDEN",
        "DELEGATION_NOT_ACTIVE",
        `no active delegation lets ${v.organization.name} act for ${org.name} on ${input.kind} in ${input.environment}`,
      );
    }
    if (org.id !== v.organization.id) delegationId = (await this.policy.delegationCovering(v, target))?.delegationId ?? null;
    const activeOfficers = await em.count(Officer, { where: { organizationId: org.id, status: OfficerStatus.ACTIVE, enrolledAt: Not(IsNull()) } });
    if (activeOfficers < MIN_ACTIVE_OFFICERS) {
      throw preconditionFailed(
        "INSUFFICIENT_OFFICERS",
        `${org.name} has ${activeOfficers} active and enrolled security officer(s); at least ${MIN_ACTIVE_OFFICERS} are required before CSRs can be submitted`,
      );
    }
    const parsed = await parseCsr(input.pem, this.profile(input.kind), { organizationName: org.name, country: org.country });
    audit.details = {
      ...audit.details,
      publicKeyFingerprint: parsed.publicKeyFingerprint,
      keyAlgorithm: parsed.keyAlgorithm,
      subject: parsed.subject,
      ignoredExtensions: parsed.ignoredExtensions,
    };
    await this.assertKeyUnused(em, parsed);
    const csr = em.create(CertificateSigningRequest, {
      id: randomUUID(),
      organizationId: org.id,
      kind: input.kind,
      environment: input.environment,
      status: CsrStatus.PENDING,
      subject: parsed.subject,
      commonName: parsed.commonName,
      keyAlgorithm: parsed.keyAlgorithm,
      publicKeyFingerprint: parsed.publicKeyFingerprint,
      pem: parsed.pem,
      submittedById: v.officer.id,
      submittedAt: this.clock.now(),
      delegationId,
      decidedById: null,
      decidedAt: null,
      rejectionReason: null,
      renewalOfId: renewalOf?.id ?? null,
      certificateId: null,
      ignoredExtensions: parsed.ignoredExtensions,
    });
    try {
      await em.insert(CertificateSigningRequest, csr);
    } catch (error) {
      // The partial unique index on pending keys: a concurrent submission of the same key won.
      if (isUniqueViolation(error)) throw keyReuse();
      throw error;
    }
    await recordCsrChanges(em, [{ csr, from: null, to: csr.status }]);
    if (!renewalOf) audit.targetId = csr.id;
    await notify({
      type: NotificationType.CSR_SUBMITTED,
      organizationId: org.id,
      certificateKind: csr.kind,
      environment: csr.environment,
      csrId: csr.id,
      certificateId: renewalOf?.id ?? null,
      message: `${v.officer.name} submitted a ${csr.kind} request for ${csr.commonName} (${csr.environment})${renewalOf ? ` renewing certificate ${renewalOf.serialNumber}` : ""}.`,
    });
    return csr;
  }

  /** KEY_REUSE: a key already certified, waiting in a request, or blocked after a compromise. */
  private async assertKeyUnused(em: EntityManager, parsed: ParsedCsr): Promise<void> {
    const fingerprint = parsed.publicKeyFingerprint;
    // One after the other: a transaction is one connection, and pg refuses overlapping queries on it.
    if (await em.count(BlockedKey, { where: { publicKeyFingerprint: fingerprint } })) {
      throw badInput("KEY_REUSE", "This public key was reported compromised and is blocked; generate a new key pair.");
    }
    if (await em.count(Certificate, { where: { publicKeyFingerprint: fingerprint } })) throw keyReuse();
    if (await em.count(CertificateSigningRequest, { where: { publicKeyFingerprint: fingerprint, status: CsrStatus.PENDING } })) throw keyReuse();
    await this.assertNotSystemKey(em, fingerprint);
  }

  /**
   * KEY_REUSE for the KMS's own keys: every root and issuing CA key and every
   * KMS certificate's key (current, older and retired ones) of both
   * environments. Compared by canonical fingerprint, so no re-encoding of
   * such a key gets through.
   */
  private async assertNotSystemKey(em: EntityManager, fingerprint: string): Promise<void> {
    this.caKeys ??= new Set(
      [Environment.MTF, Environment.PRODUCTION].flatMap((environment) => {
        const ca = this.authorities.of(environment);
        return [ca.root, ca.issuing].map((certificate) => spkiFingerprint(toBytes(certificate.publicKey.rawData)));
      }),
    );
    const ids = (await em.find(KmsCertificate, { select: { id: true } })).map((row) => row.id);
    const unknown = ids.filter((id) => !this.kmsKeys.has(id));
    if (unknown.length) {
      for (const row of await em.find(KmsCertificate, { select: { id: true, derBase64: true }, where: { id: In(unknown) } })) {
        this.kmsKeys.set(row.id, spkiFingerprint(certificateSpki(new Uint8Array(Buffer.from(row.derBase64, "base64")))));
      }
    }
    if (this.caKeys.has(fingerprint) || ids.some((id) => this.kmsKeys.get(id) === fingerprint)) {
      throw badInput("KEY_REUSE", "This public key is one of the KMS's own CA or service keys; it can never be certified for a participant.");
    }
  }

  async cancel(viewer: Viewer | null, csrId: string): Promise<CertificateSigningRequest> {
    return this.mutations.run(
      { action: "csr.cancel", targetType: "CertificateSigningRequest", targetId: csrId, actor: viewer },
      async ({ em, audit }) => {
        const v = this.policy.requireViewer(viewer);
        const csr = await em.findOne(CertificateSigningRequest, { where: { id: csrId } });
        if (!csr || !(await this.policy.canReadKeyMaterial(v, csr))) throw notFound("certificate signing request");
        audit.organizationId = csr.organizationId;
        if (!(await this.policy.canActOnKeyMaterial(v, csr))) throw forbidden("only the submitting organization may cancel its request");
        await this.decide(em, csr, CsrStatus.CANCELLED, v, null);
        return csr;
      },
    );
  }

  async reject(viewer: Viewer | null, csrId: string, reason: string): Promise<CertificateSigningRequest> {
    return this.mutations.run(
      { action: "csr.reject", targetType: "CertificateSigningRequest", targetId: csrId, actor: viewer },
      async ({ em, audit, notify }) => {
        const v = this.policy.requireOperator(viewer);
        const csr = await em.findOne(CertificateSigningRequest, { where: { id: csrId } });
        if (!csr) throw notFound("certificate signing request");
        audit.organizationId = csr.organizationId;
        const text = freeText(reason, { field: "reason", reason: "INVALID_REASON", max: MAX_REJECTION_REASON });
        if (!text) throw badInput("INVALID_REASON", "a rejection needs a reason the officers can act on");
        audit.details = { reason: text };
        await this.decide(em, csr, CsrStatus.REJECTED, v, text);
        await notify({
          type: NotificationType.CSR_REJECTED,
          organizationId: csr.organizationId,
          certificateKind: csr.kind,
          environment: csr.environment,
          csrId: csr.id,
          message: `The ${csr.kind} request for ${csr.commonName} (${csr.environment}) was rejected: ${text}`,
        });
        return csr;
      },
    );
  }

  /**
   * Operators only, in an environment under dual control: the first
   * operator's approval of a PENDING request. Signing then needs another operator.
   */
  async approve(viewer: Viewer | null, csrId: string): Promise<CertificateSigningRequest> {
    return this.mutations.run(
      { action: "csr.approve", targetType: "CertificateSigningRequest", targetId: csrId, actor: viewer },
      async ({ em, audit, notify }) => {
        const v = this.policy.requireOperator(viewer);
        const csr = await em.findOne(CertificateSigningRequest, { where: { id: csrId } });
        if (!csr) throw notFound("certificate signing request");
        audit.organizationId = csr.organizationId;
        if (csr.status !== CsrStatus.PENDING) throw alreadyDecided(csr.status);
        if (!this.dualControl.appliesTo(csr.environment)) {
          throw preconditionFailed("DUAL_CONTROL_NOT_REQUIRED", `${csr.environment} is not under dual control: an operator signs without a prior approval`);
        }
        if (csr.approvedById) throw conflict("ALREADY_APPROVED", "another operator has already approved this request; a different operator signs it");
        const approvedAt = this.clock.now();
        const result = await em
          .createQueryBuilder()
          .update(CertificateSigningRequest)
          .set({ approvedById: v.officer.id, approvedAt })
          .where("id = :id AND status = :pending AND approvedById IS NULL", { id: csr.id, pending: CsrStatus.PENDING })
          .execute();
        if (!result.affected) throw conflict("ALREADY_APPROVED", "the request was approved or decided meanwhile");
        Object.assign(csr, { approvedById: v.officer.id, approvedAt });
        const kms = await em.findOne(Organization, { select: { id: true }, where: { kind: OrganizationKind.KMS } });
        await notify({
          type: NotificationType.CSR_APPROVED,
          // Addressed to the KMS organization: the operators, who sign; the participant hears when it is signed.
          organizationId: kms?.id ?? null,
          csrId: csr.id,
          message: `${v.officer.name} approved the ${csr.kind} request for ${csr.commonName} (${csr.environment}); another operator may now sign it.`,
        });
        return csr;
      },
    );
  }

  /** Operators only. Exactly one certificate per request, whatever the concurrency: the guarded UPDATE decides. */
  async sign(viewer: Viewer | null, input: SignCsr): Promise<Certificate> {
    return this.mutations.run(
      { action: "csr.sign", targetType: "CertificateSigningRequest", targetId: input.csrId, actor: viewer },
      async ({ em, audit, notify }) => {
        const v = this.policy.requireOperator(viewer);
        const csr = await em.findOne(CertificateSigningRequest, { where: { id: input.csrId } });
        if (!csr) throw notFound("certificate signing request");
        audit.organizationId = csr.organizationId;
        const profile = this.profile(csr.kind);
        const validityDays = input.validityDays ?? profile.defaultValidityDays;
        if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > profile.maxValidityDays) {
          throw badInput("INVALID_VALIDITY", `validityDays must be between 1 and ${profile.maxValidityDays} for ${csr.kind}`);
        }
        if (csr.status !== CsrStatus.PENDING) throw alreadyDecided(csr.status);
        if (this.dualControl.appliesTo(csr.environment)) {
          await this.dualControl.assertApprovedByAnother(em, csr.approvedById, v, `the ${csr.environment} request`);
          audit.details = { approvedById: csr.approvedById };
        }
        if (await em.count(BlockedKey, { where: { publicKeyFingerprint: csr.publicKeyFingerprint } })) {
          throw conflict("KEY_BLOCKED", "the request's key was reported compromised after submission; it cannot be certified");
        }
        // A request can only be pending with a certified key if it came in under another encoding before keys were canonical.
        if (await em.count(Certificate, { where: { publicKeyFingerprint: csr.publicKeyFingerprint } })) throw keyReuse();
        await this.assertNotSystemKey(em, csr.publicKeyFingerprint);
        const org = await em.findOneOrFail(Organization, { where: { id: csr.organizationId } });
        if (csr.delegationId) await this.assertDelegationStillActive(em, csr.delegationId);
        await this.decide(em, csr, CsrStatus.SIGNED, v, null);

        const ca = this.authorities.of(csr.environment);
        const request = await parseCsr(csr.pem, profile, { organizationName: org.name, country: org.country });
        const now = this.clock.now();
        const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
        const notAfter = new Date(notBefore.getTime() + validityDays * DAY_MS);
        const serialNumber = newSerialHex();
        const der = await ca.issue({ profile, subjectDer: request.subjectDer, spki: request.spki, serialHex: serialNumber, notBefore, notAfter });
        const certificate = em.create(Certificate, {
          id: randomUUID(),
          organizationId: csr.organizationId,
          kind: csr.kind,
          environment: csr.environment,
          serialNumber,
          subject: csr.subject,
          issuer: rfc4514(toBytes(ca.issuing.subjectName.toArrayBuffer())),
          commonName: csr.commonName,
          keyAlgorithm: csr.keyAlgorithm,
          publicKeyFingerprint: csr.publicKeyFingerprint,
          notBefore,
          notAfter,
          fingerprintSha256: sha256Hex(der),
          derBase64: Buffer.from(der).toString("base64"),
          csrId: csr.id,
          revokedAt: null,
          revocationReason: null,
          renewalOfId: csr.renewalOfId,
          renewedById: null,
          createdAt: now,
        });
        await em.insert(Certificate, certificate);
        await recordCertificateChanges(em, [{ certificate, from: null, to: CertificateStatus.ACTIVE }]);
        await em.update(CertificateSigningRequest, { id: csr.id }, { certificateId: certificate.id });
        csr.certificateId = certificate.id;
        if (csr.renewalOfId) await em.update(Certificate, { id: csr.renewalOfId }, { renewedById: certificate.id });
        audit.details = { ...audit.details, certificateId: certificate.id, serialNumber, validityDays, notAfter: notAfter.toISOString() };
        await notify({
          type: NotificationType.CSR_SIGNED,
          organizationId: csr.organizationId,
          certificateKind: csr.kind,
          environment: csr.environment,
          csrId: csr.id,
          certificateId: certificate.id,
          message: `The ${csr.kind} certificate for ${csr.commonName} (${csr.environment}) was signed: serial ${serialNumber}, valid until ${notAfter.toISOString()}. Download it from KeyPortal.`,
        });
        return certificate;
      },
    );
  }

  private async assertDelegationStillActive(em: EntityManager, delegationId: string): Promise<void> {
    const delegation = await em.findOne(Delegation, { where: { id: delegationId } });
    if (delegation?.status !== DelegationStatus.ACTIVE) {
      throw preconditionFailed("DELEGATION_NOT_ACTIVE", "the delegation under which this request was submitted is no longer active");
    }
  }

  /** PENDING → decided, guarded in the database: 0 rows means someone else decided first. */
  private async decide(em: EntityManager, csr: CertificateSigningRequest, status: CsrStatus, by: Viewer, reason: string | null): Promise<void> {
    if (csr.status !== CsrStatus.PENDING) throw alreadyDecided(csr.status);
    const decidedAt = this.clock.now();
    const result = await em
      .createQueryBuilder()
      .update(CertificateSigningRequest)
      .set({ status, decidedById: by.officer.id, decidedAt, rejectionReason: reason })
      .where("id = :id AND status = :pending", { id: csr.id, pending: CsrStatus.PENDING })
      .execute();
    if (!result.affected) {
      const current = await em.findOne(CertificateSigningRequest, { where: { id: csr.id } });
      throw alreadyDecided(current?.status ?? csr.status);
    }
    await recordCsrChanges(em, [{ csr, from: CsrStatus.PENDING, to: status }]);
    Object.assign(csr, { status, decidedById: by.officer.id, decidedAt, rejectionReason: reason });
  }

  async get(viewer: Viewer | null, id: string): Promise<CertificateSigningRequest | null> {
    const v = this.policy.requireViewer(viewer);
    const csr = await this.db.manager.findOne(CertificateSigningRequest, { where: { id } });
    return csr && (await this.policy.canReadKeyMaterial(v, csr)) ? csr : null;
  }

  async list(
    viewer: Viewer | null,
    filter: CsrFilter | null | undefined,
    first: number | null | undefined,
    after: string | null | undefined,
  ): Promise<Page<CertificateSigningRequest>> {
    const v = this.policy.requireViewer(viewer);
    const size = pageSize(first, 50);
    const cursor = decodeKeysetCursor(after);
    const f = filter ?? {};
    const pages: CertificateSigningRequest[][] = [];
    for (const restrict of await readableKeyMaterialBranches<CertificateSigningRequest>("r", this.policy, v)) {
      const qb = this.db.manager.getRepository(CertificateSigningRequest).createQueryBuilder("r");
      restrict(qb);
      if (f.organizationId) qb.andWhere("r.organizationId = :fOrg", { fOrg: f.organizationId });
      if (f.status) qb.andWhere("r.status = :fStatus", { fStatus: f.status });
      if (f.kind) qb.andWhere("r.kind = :fKind", { fKind: f.kind });
      if (f.environment) qb.andWhere("r.environment = :fEnv", { fEnv: f.environment });
      // A row value compares like the (…, submittedAt, id) index it walks, where an OR would not use it.
      if (cursor) qb.andWhere("(r.submittedAt, r.id) < (:cAt, :cId)", { cAt: cursor.sortKey, cId: cursor.id });
      pages.push(await qb.orderBy("r.submittedAt", "DESC").addOrderBy("r.id", "DESC").take(size + 1).getMany());
    }
    const rows = mergeKeysetPages(pages, "DESC", (r) => [r.submittedAt.toISOString(), r.id], size + 1);
    const cursorOf = (r: CertificateSigningRequest) => encodeKeysetCursor(r.submittedAt.toISOString(), r.id);
    const { nodes, pageInfo } = pageOf(rows, size, cursorOf);
    return { nodes, pageInfo, cursorOf, count: () => this.count(v, f) };
  }

  /** Exact, from csr_tallies (docs/read-path.md): operators read the all-organizations rows, officers their scopes' rows. */
  private async count(viewer: Viewer, f: CsrFilter): Promise<number> {
    const qb = this.db.manager.createQueryBuilder(CsrTally, "t").select("COALESCE(SUM(t.n), 0)", "n");
    await restrictToReadableKeyMaterial(qb, "t", this.policy, viewer);
    if (f.organizationId) qb.andWhere("t.organizationId = :fOrg", { fOrg: f.organizationId });
    else if (this.policy.isOperator(viewer)) qb.andWhere("t.organizationId = :tAll", { tAll: ALL_ORGANIZATIONS });
    if (f.status) qb.andWhere("t.status = :fStatus", { fStatus: f.status });
    if (f.kind) qb.andWhere("t.kind = :fKind", { fKind: f.kind });
    if (f.environment) qb.andWhere("t.environment = :fEnv", { fEnv: f.environment });
    return Number((await qb.getRawOne<{ n: string | number }>())?.n ?? 0);
  }

}

const keyReuse = () =>
  badInput("KEY_REUSE", "This public key is already in a certificate or a pending request; every request needs a fresh key pair.");

const alreadyDecided = (status: CsrStatus) => conflict("ALREADY_DECIDED", `the request is already ${status.toLowerCase()}`);
