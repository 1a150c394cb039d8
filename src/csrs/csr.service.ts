import { randomUUID } from "node:crypto";
import { In, type EntityManager, IsNull, Not } from "typeorm";
import type { MutationScope, Mutations, PrepareScope } from "../kernel/unit-of-work.js";
import type { NewNotification, PreparedEmails } from "../kernel/ports.js";
import type { Authorities } from "../certificates/authorities.js";
import { buildCertificateRow, insertIssued } from "../certificates/issuance.js";
import { recordCsrChanges } from "../certificates/tallies.js";
import { ALL_ORGANIZATIONS, CsrTally } from "../certificates/tally.entity.js";
import { mergeKeysetPages, readableKeyMaterialBranches, restrictToReadableKeyMaterial } from "../certificates/visibility.js";
import { BlockedKey, Certificate } from "../certificates/certificate.entity.js";
import type { Clock } from "../kernel/clock.js";
import { isUniqueViolation } from "../kernel/driver.js";
import type { Database } from "../db/data-source.js";
import { Delegation } from "../delegations/delegation.entity.js";
import { KmsCertificate } from "../kms/kms-certificate.entity.js";
import { CertificateKind, CsrStatus, DelegationStatus, Environment, NotificationType, OfficerStatus, OrganizationKind, Role } from "../kernel/domain.js";
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
import { toBytes } from "../pki/spki.js";
import type { AccessPolicy, KeyMaterialScope } from "../policy.js";
import { freeText } from "../validation.js";
import type { Viewer } from "../viewer.js";
import { CertificateSigningRequest } from "./csr.entity.js";
import { lockKey, lockOrganization } from "../kernel/locks.js";
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
    return this.mutations.run<CertificateSigningRequest, PreparedRequest>(
      {
        action: "csr.submit",
        targetType: "CertificateSigningRequest",
        organizationId: input.organizationId,
        actor: viewer,
        details: { organizationId: input.organizationId, kind: input.kind, environment: input.environment },
      },
      (scope, prepared) => this.commitRequest(scope, prepared),
      (scope) => this.prepareRequest(scope, viewer, input, null),
    );
  }

  /** A new request for the same organization, kind and environment as a certificate, with a fresh key. */
  async renew(viewer: Viewer | null, input: { certificateId: string; pem: string }): Promise<CertificateSigningRequest> {
    return this.mutations.run<CertificateSigningRequest, PreparedRequest>(
      {
        action: "certificate.renew",
        targetType: "Certificate",
        targetId: input.certificateId,
        actor: viewer,
        details: { certificateId: input.certificateId },
      },
      async (scope, prepared) => {
        const csr = await this.commitRequest(scope, prepared);
        scope.audit.details = { certificateId: input.certificateId, csrId: csr.id, publicKeyFingerprint: csr.publicKeyFingerprint };
        return csr;
      },
      async (scope) => {
        const v = this.policy.requireViewer(viewer);
        const old = await this.db.manager.findOne(Certificate, { where: { id: input.certificateId } });
        if (!old || !(await this.policy.canReadKeyMaterial(v, old))) throw notFound("certificate");
        scope.audit.organizationId = old.organizationId;
        return this.prepareRequest(scope, viewer, { organizationId: old.organizationId, kind: old.kind, environment: old.environment, pem: input.pem }, old);
      },
    );
  }

  /** The checks of a submission on committed data and the parse, before the transaction that inserts the request. */
  private async prepareRequest(
    { audit, recipients }: PrepareScope,
    viewer: Viewer | null,
    input: SubmitCsr,
    renewalOf: Certificate | null,
  ): Promise<PreparedRequest> {
    const em = this.db.manager;
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
    await this.assertEnoughOfficers(em, org);
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
      approvedById: null,
      approvedAt: null,
      ignoredExtensions: parsed.ignoredExtensions,
    });
    const notification: NewNotification = {
      type: NotificationType.CSR_SUBMITTED,
      organizationId: org.id,
      certificateKind: csr.kind,
      environment: csr.environment,
      csrId: csr.id,
      certificateId: renewalOf?.id ?? null,
      message: `${v.officer.name} submitted a ${csr.kind} request for ${csr.commonName} (${csr.environment})${renewalOf ? ` renewing certificate ${renewalOf.serialNumber}` : ""}.`,
    };
    return {
      org,
      csr,
      renewal: renewalOf !== null,
      notification,
      emails: { recipients: await recipients(notification), subjects: { organization: org, csr, certificate: renewalOf } },
    };
  }

  /** INSUFFICIENT_OFFICERS: fewer than MIN_ACTIVE_OFFICERS active and enrolled officers. */
  private async assertEnoughOfficers(em: EntityManager, org: Organization): Promise<void> {
    const activeOfficers = await em.count(Officer, { where: { organizationId: org.id, status: OfficerStatus.ACTIVE, enrolledAt: Not(IsNull()) } });
    if (activeOfficers < MIN_ACTIVE_OFFICERS) {
      throw preconditionFailed(
        "INSUFFICIENT_OFFICERS",
        `${org.name} has ${activeOfficers} active and enrolled security officer(s); at least ${MIN_ACTIVE_OFFICERS} are required before CSRs can be submitted`,
      );
    }
  }

  /**
   * In the transaction: the officers are counted again (a deactivation may
   * have come in meanwhile) and the partial unique index on pending keys
   * decides between two submissions of one key.
   */
  private async commitRequest(scope: MutationScope, p: PreparedRequest): Promise<CertificateSigningRequest> {
    const { em, audit, notify } = scope;
    const { csr } = p;
    await lockOrganization(em, p.org.id, "share"); // PostgreSQL: no deactivation commits between this count and the submission
    await this.assertEnoughOfficers(em, p.org);
    // PostgreSQL: a signature of another request for this key takes the same lock after its guarded UPDATE, so this waits and then sees it.
    await lockKey(em, csr.publicKeyFingerprint);
    if (this.db.isPostgres) await this.assertKeyStillFree(em, csr.publicKeyFingerprint);
    try {
      await em.createQueryBuilder().insert().into(CertificateSigningRequest).values(csr).updateEntity(false).execute();
    } catch (error) {
      // The partial unique index on pending keys: a concurrent submission of the same key won.
      if (isUniqueViolation(error)) throw keyReuse();
      throw error;
    }
    await recordCsrChanges(em, [{ csr, from: null, to: csr.status }]);
    if (!p.renewal) audit.targetId = csr.id;
    await notify(p.notification, p.emails);
    return csr;
  }

  /**
   * KEY_REUSE for a blocked or certified key. Checked before the transaction
   * (assertKeyUnused) and, on PostgreSQL where mutations run concurrently,
   * again inside it under the key's lock. A second pending request for the
   * key is the partial unique index's to refuse.
   */
  private async assertKeyStillFree(em: EntityManager, fingerprint: string): Promise<void> {
    if (await em.count(BlockedKey, { where: { publicKeyFingerprint: fingerprint } })) {
      throw badInput("KEY_REUSE", "This public key was reported compromised and is blocked; generate a new key pair.");
    }
    if (await em.count(Certificate, { where: { publicKeyFingerprint: fingerprint } })) throw keyReuse();
  }

  /** KEY_REUSE: a key already certified, waiting in a request, or blocked after a compromise. */
  private async assertKeyUnused(em: EntityManager, parsed: ParsedCsr): Promise<void> {
    const fingerprint = parsed.publicKeyFingerprint;
    // One after the other: a transaction is one connection, and pg refuses overlapping queries on it.
    await this.assertKeyStillFree(em, fingerprint);
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

  /**
   * Operators only. Exactly one certificate per request, whatever the
   * concurrency: the guarded UPDATE decides. Everything slow happens before
   * the transaction (prepareSignature: the checks on committed data, the
   * parse and the CA signature); inside it the guards are read again in that
   * UPDATE, and a loser's signature is discarded: never stored, served or
   * announced.
   */
  async sign(viewer: Viewer | null, input: SignCsr): Promise<Certificate> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.mutations.run<Certificate, PreparedSignature>(
          { action: "csr.sign", targetType: "CertificateSigningRequest", targetId: input.csrId, actor: viewer },
          (scope, signed) => this.commitSignature(scope, signed),
          (scope) => this.prepareSignature(viewer, input, scope),
        );
      } catch (error) {
        // A serial drawn before the transaction is unique by the index; one taken meanwhile (2^-127 per pair) draws again.
        if (attempt < 3 && isUniqueViolation(error) && /serial/i.test(uniqueConstraintOf(error))) continue;
        throw error;
      }
    }
  }

  /** The checks of signCsr on committed data, the parse and the signature: nothing here holds the write path. */
  private async prepareSignature(viewer: Viewer | null, input: SignCsr, { audit, recipients }: PrepareScope): Promise<PreparedSignature> {
    const em = this.db.manager;
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
    const dualControl = this.dualControl.appliesTo(csr.environment);
    try {
      if (dualControl) {
        await this.dualControl.assertApprovedByAnother(em, csr.approvedById, v, `the ${csr.environment} request`);
        audit.details = { approvedById: csr.approvedById };
      }
      await this.assertSignable(em, csr);
    } catch (error) {
      // Decided by someone else since it was read (its key is then certified): the refusal a loser gets.
      const now = error instanceof DomainError ? await em.findOne(CertificateSigningRequest, { where: { id: csr.id } }) : null;
      if (now && now.status !== CsrStatus.PENDING) throw alreadyDecided(now.status);
      throw error;
    }
    await this.assertNotSystemKey(em, csr.publicKeyFingerprint);
    const org = await em.findOneOrFail(Organization, { where: { id: csr.organizationId } });

    const ca = this.authorities.of(csr.environment);
    const request = await parseCsr(csr.pem, profile, { organizationName: org.name, country: org.country });
    const now = this.clock.now();
    const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const notAfter = new Date(notBefore.getTime() + validityDays * DAY_MS);
    const serialNumber = newSerialHex();
    const der = await ca.issue({ profile, subjectDer: request.subjectDer, spki: request.spki, serialHex: serialNumber, notBefore, notAfter });
    const certificate = buildCertificateRow(em, {
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
      der,
      csrId: csr.id,
      renewalOfId: csr.renewalOfId,
      createdAt: now,
    });
    const notification: NewNotification = {
      type: NotificationType.CSR_SIGNED,
      organizationId: csr.organizationId,
      certificateKind: csr.kind,
      environment: csr.environment,
      csrId: csr.id,
      certificateId: certificate.id,
      message: `The ${csr.kind} certificate for ${csr.commonName} (${csr.environment}) was signed: serial ${serialNumber}, valid until ${notAfter.toISOString()}. Download it from KeyPortal.`,
    };
    audit.details = { ...audit.details, certificateId: certificate.id, serialNumber, validityDays, notAfter: notAfter.toISOString() };
    return {
      operator: v,
      csr,
      dualControl,
      certificate,
      notification,
      emails: { recipients: await recipients(notification), subjects: { organization: org, certificate, csr } },
    };
  }

  /**
   * The decision, in the transaction: one UPDATE that re-reads the guards
   * (still PENDING, the same dual-control approval by a still active
   * operator, key neither blocked nor certified, delegation still active)
   * and records the decision with its certificate; then the rows it causes.
   */
  private async commitSignature({ em, notify }: MutationScope, p: PreparedSignature): Promise<Certificate> {
    const { csr, certificate } = p;
    const decidedAt = this.clock.now();
    const guarded = em
      .createQueryBuilder()
      .update(CertificateSigningRequest)
      .set({ status: CsrStatus.SIGNED, decidedById: p.operator.officer.id, decidedAt, rejectionReason: null, certificateId: certificate.id })
      .where("id = :id AND status = :pending", { id: csr.id, pending: CsrStatus.PENDING })
      .andWhere(`NOT EXISTS (SELECT 1 FROM "blocked_keys" WHERE "publicKeyFingerprint" = :fp)`, { fp: csr.publicKeyFingerprint })
      .andWhere(`NOT EXISTS (SELECT 1 FROM "certificates" WHERE "publicKeyFingerprint" = :fp)`);
    if (p.dualControl) {
      guarded.andWhere(`"approvedById" = :approver AND EXISTS (SELECT 1 FROM "officers" WHERE "id" = :approver AND "role" = :operatorRole AND "status" = :active)`, {
        approver: csr.approvedById,
        operatorRole: Role.KMS_OPERATOR,
        active: OfficerStatus.ACTIVE,
      });
    }
    if (csr.delegationId) {
      guarded.andWhere(`EXISTS (SELECT 1 FROM "delegations" WHERE "id" = :delegationId AND "status" = :delegationActive)`, {
        delegationId: csr.delegationId,
        delegationActive: DelegationStatus.ACTIVE,
      });
    }
    const result = await guarded.execute();
    if (!result.affected) throw await this.whyNotSignable(em, p);
    // After the guarded UPDATE (losers stop there): a submission of this key now waits and then sees the certificate.
    await lockKey(em, csr.publicKeyFingerprint);
    await recordCsrChanges(em, [{ csr, from: CsrStatus.PENDING, to: CsrStatus.SIGNED }]);
    Object.assign(csr, { status: CsrStatus.SIGNED, decidedById: p.operator.officer.id, decidedAt, rejectionReason: null, certificateId: certificate.id });
    await insertIssued(em, certificate);
    await notify(p.notification, p.emails);
    return certificate;
  }

  /** Why the guarded UPDATE found nothing to change: the refusal the checks before it would have given now. */
  private async whyNotSignable(em: EntityManager, p: PreparedSignature): Promise<DomainError> {
    const current = await em.findOne(CertificateSigningRequest, { where: { id: p.csr.id } });
    if (!current || current.status !== CsrStatus.PENDING) return alreadyDecided(current?.status ?? p.csr.status);
    try {
      if (p.dualControl) {
        if (current.approvedById !== p.csr.approvedById) return conflict("ALREADY_DECIDED", "the request's approval changed meanwhile; sign it again");
        await this.dualControl.assertApprovedByAnother(em, current.approvedById, p.operator, `the ${current.environment} request`);
      }
      await this.assertSignable(em, current);
    } catch (error) {
      if (error instanceof DomainError) return error;
      throw error;
    }
    return alreadyDecided(current.status);
  }

  /** The guards of a signature that other mutations can change: blocked or certified key, delegation no longer active. */
  private async assertSignable(em: EntityManager, csr: CertificateSigningRequest): Promise<void> {
    if (await em.count(BlockedKey, { where: { publicKeyFingerprint: csr.publicKeyFingerprint } })) {
      throw conflict("KEY_BLOCKED", "the request's key was reported compromised after submission; it cannot be certified");
    }
    // A request can only be pending with a certified key if it came in under another encoding before keys were canonical.
    if (await em.count(Certificate, { where: { publicKeyFingerprint: csr.publicKeyFingerprint } })) throw keyReuse();
    if (csr.delegationId) await this.assertDelegationStillActive(em, csr.delegationId);
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

/** What a submission (or renewal) prepared before its transaction. */
interface PreparedRequest {
  org: Organization;
  csr: CertificateSigningRequest;
  renewal: boolean;
  notification: NewNotification;
  emails: PreparedEmails;
}

/** What signCsr decided before its transaction: the certificate, signed, and the notification it will cause. */
interface PreparedSignature {
  operator: Viewer;
  csr: CertificateSigningRequest;
  dualControl: boolean;
  certificate: Certificate;
  notification: NewNotification;
  emails: PreparedEmails;
}

/** The constraint (PostgreSQL) or the message naming the columns (SQLite) of a unique violation. */
function uniqueConstraintOf(error: unknown): string {
  const e = error as { driverError?: { constraint?: string; message?: string }; constraint?: string; message?: string };
  return [e.driverError?.constraint, e.constraint, e.driverError?.message, e.message].filter(Boolean).join(" ");
}

const keyReuse = () =>
  badInput("KEY_REUSE", "This public key is already in a certificate or a pending request; every request needs a fresh key pair.");

const alreadyDecided = (status: CsrStatus) => conflict("ALREADY_DECIDED", `the request is already ${status.toLowerCase()}`);
