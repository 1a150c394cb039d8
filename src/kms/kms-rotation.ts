/**
 * Rotation (a new key and certificate becomes current; the previous one
 * stays valid: overlap), the second operator's approval where dual control
 * applies, and retirement of a non-current certificate.
 */
import { randomUUID } from "node:crypto";
import type { EntityManager } from "typeorm";
import type { Mutations, MutationSpec } from "../kernel/unit-of-work.js";
import type { Clock } from "../kernel/clock.js";
import { isUniqueViolation } from "../kernel/driver.js";
import type { Database } from "../db/data-source.js";
import { Environment, KmsCertificatePurpose } from "../kernel/domain.js";
import { badInput, conflict, DomainError, notFound, preconditionFailed } from "../kernel/errors.js";
import type { AccessPolicy } from "../policy.js";
import type { Viewer } from "../viewer.js";
import type { DualControl } from "../dual-control.js";
import { KmsCertificate } from "./kms-certificate.entity.js";
import type { KmsCertificates } from "./kms-certificates.js";
import { KmsRotationApproval } from "./kms-rotation-approval.entity.js";
import type { KmsProvisioning } from "./kms-provisioning.js";
import { KMS_DEFAULT_VALIDITY_DAYS, KMS_MAX_VALIDITY_DAYS } from "./kms-profiles.js";

/** How long a rotation approval waits for the second operator. */
export const KMS_ROTATION_APPROVAL_MS = 86_400_000;

export interface RotateKmsCertificate {
  environment: Environment;
  purpose: KmsCertificatePurpose;
  validityDays?: number | null;
}

export interface KmsRotationOptions {
  /** Re-signs the environment's CRL in the caller's transaction, so that a retirement is on the CRL served next. */
  crl?: { rebuild(em: EntityManager, environment: Environment): Promise<unknown> };
  /** Environments where a rotation needs another operator's approval first. */
  dualControl?: DualControl;
}

export class KmsRotation {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly mutations: Mutations,
    private readonly certs: KmsCertificates,
    private readonly provisioning: KmsProvisioning,
    private readonly options: KmsRotationOptions,
  ) {}

  /** Operators only: a new key and certificate that becomes current; the previous one stays valid (overlap). */
  async rotate(viewer: Viewer | null, input: RotateKmsCertificate): Promise<KmsCertificate> {
    const { environment, purpose } = input;
    const spec: MutationSpec = {
      action: "kms.certificate.rotate",
      targetType: "KmsCertificate",
      actor: viewer,
      details: { environment, purpose, validityDays: input.validityDays ?? null },
    };
    let prepared: KmsCertificate;
    const dualControl = this.options.dualControl?.appliesTo(environment) ? this.options.dualControl : null;
    try {
      const v = this.policy.requireOperator(viewer);
      // Checked before a key is made, and again (and used up) in the transaction.
      if (dualControl) await dualControl.assertApprovedByAnother(this.db.manager, (await this.standingApproval(this.db.manager, environment, purpose))?.approvedById ?? null, v, `rotating the ${environment} ${purpose} certificate`);
      const validityDays = input.validityDays ?? KMS_DEFAULT_VALIDITY_DAYS;
      if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > KMS_MAX_VALIDITY_DAYS) {
        throw badInput("INVALID_VALIDITY", `validityDays must be between 1 and ${KMS_MAX_VALIDITY_DAYS}`);
      }
      prepared = await this.provisioning.prepare(environment, purpose, validityDays);
    } catch (error) {
      // Refused before the transaction: audited like any other refusal.
      if (error instanceof DomainError) return this.mutations.run(spec, () => Promise.reject(error));
      throw error;
    }
    return this.mutations.run({ ...spec, organizationId: await this.certs.kmsOrganizationId() }, async (scope) => {
      const v = this.policy.requireOperator(viewer);
      if (dualControl) {
        const approval = await this.standingApproval(scope.em, environment, purpose);
        await dualControl.assertApprovedByAnother(scope.em, approval?.approvedById ?? null, v, `rotating the ${environment} ${purpose} certificate`);
        // Used up once: of two rotations on one approval, one deletes it and the other finds nothing.
        const used = await scope.em.delete(KmsRotationApproval, { id: approval!.id });
        if (!used.affected) throw preconditionFailed("SECOND_APPROVAL_REQUIRED", "the approval was used by another rotation meanwhile");
        scope.audit.details = { ...scope.audit.details, approvedById: approval!.approvedById };
      }
      const previous = await this.certs.findCurrent(scope.em, environment, purpose);
      if (previous) {
        // Guarded: if a concurrent rotation already replaced it, this one loses.
        const result = await scope.em.update(KmsCertificate, { id: previous.id, current: true }, { current: false });
        if (!result.affected) throw concurrentRotation();
      }
      try {
        await this.provisioning.publish(scope, prepared, previous);
      } catch (error) {
        if (isUniqueViolation(error)) throw concurrentRotation();
        throw error;
      }
      return prepared;
    });
  }

  private async standingApproval(em: EntityManager, environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsRotationApproval | null> {
    const approval = await em.findOne(KmsRotationApproval, { where: { environment, purpose } });
    return approval && approval.expiresAt.getTime() > this.clock.now().getTime() ? approval : null;
  }

  /**
   * Operators only, in an environment under dual control: approves the next
   * rotation of one KMS certificate; a different operator then rotates it
   * within 24 hours. Replaces an earlier approval for the same certificate.
   */
  async approveRotation(viewer: Viewer | null, environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsRotationApproval> {
    return this.mutations.run(
      { action: "kms.certificate.approve_rotation", targetType: "KmsRotationApproval", actor: viewer, details: { environment, purpose } },
      async ({ em, audit }) => {
        const v = this.policy.requireOperator(viewer);
        audit.organizationId = await this.certs.kmsOrganizationId(em);
        if (!this.options.dualControl?.appliesTo(environment)) {
          throw preconditionFailed("DUAL_CONTROL_NOT_REQUIRED", `${environment} is not under dual control: an operator rotates without a prior approval`);
        }
        const now = this.clock.now();
        await em.delete(KmsRotationApproval, { environment, purpose });
        const approval = em.create(KmsRotationApproval, {
          id: randomUUID(),
          environment,
          purpose,
          approvedById: v.officer.id,
          approvedAt: now,
          expiresAt: new Date(now.getTime() + KMS_ROTATION_APPROVAL_MS),
        });
        await em.insert(KmsRotationApproval, approval);
        audit.targetId = approval.id;
        audit.details = { environment, purpose, expiresAt: approval.expiresAt.toISOString() };
        return approval;
      },
    );
  }

  /** Operators only: ends a non-current certificate's overlap now. */
  async retire(viewer: Viewer | null, id: string): Promise<KmsCertificate> {
    return this.mutations.run({ action: "kms.certificate.retire", targetType: "KmsCertificate", targetId: id, actor: viewer }, async ({ em, audit }) => {
      const v = this.policy.requireOperator(viewer);
      audit.organizationId = v.organization.id;
      const certificate = await em.findOne(KmsCertificate, { where: { id } });
      if (!certificate) throw notFound("KMS certificate");
      audit.details = { environment: certificate.environment, purpose: certificate.purpose, serialNumber: certificate.serialNumber };
      const now = this.clock.now();
      // Guarded in the database too: a concurrent rotation or retirement decides, not this read.
      const result = await em
        .createQueryBuilder()
        .update(KmsCertificate)
        .set({ retiredAt: now, retiredById: v.officer.id })
        .where(`id = :id AND "current" = :notCurrent AND "retiredAt" IS NULL`, { id, notCurrent: false })
        .execute();
      if (!result.affected) {
        const latest = (await em.findOne(KmsCertificate, { where: { id } })) ?? certificate;
        if (latest.retiredAt) throw conflict("ALREADY_RETIRED", "this KMS certificate is already retired");
        throw conflict("KMS_CERTIFICATE_CURRENT", "the current KMS certificate cannot be retired; rotate first, then retire the previous one");
      }
      this.certs.forgetKey(id);
      // On the environment's CRL (SUPERSEDED) from now on, for relying parties that check it.
      await this.options.crl?.rebuild(em, certificate.environment);
      return Object.assign(certificate, { retiredAt: now, retiredById: v.officer.id });
    });
  }
}

const concurrentRotation = () => conflict("CONCURRENT_ROTATION", "another rotation of this KMS certificate finished first; list the certificates and retry if needed");
