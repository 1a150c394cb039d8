import type { MutationScope, Mutations } from "../kernel/unit-of-work.js";
import type { Clock } from "../kernel/clock.js";
import { CertificateStatus, NotificationType, RevocationReason } from "../kernel/domain.js";
import { badInput, conflict, forbidden, notFound } from "../kernel/errors.js";
import type { AccessPolicy } from "../policy.js";
import { freeText } from "../validation.js";
import type { Viewer } from "../viewer.js";
import { BlockedKey, Certificate } from "./certificate.entity.js";
import type { CrlService } from "./crl.service.js";
import { recordCertificateChanges } from "./tallies.js";

/** RFC 5280 reasons an organization's (or its delegated MSP's) officers may give. */
export const OFFICER_REVOCATION_REASONS: ReadonlySet<RevocationReason> = new Set([
  RevocationReason.UNSPECIFIED,
  RevocationReason.KEY_COMPROMISE,
  RevocationReason.AFFILIATION_CHANGED,
  RevocationReason.SUPERSEDED,
  RevocationReason.CESSATION_OF_OPERATION,
]);

/** RFC 5280 reasons a KMS operator may give (the same list today; kept apart so either can change alone). */
export const OPERATOR_REVOCATION_REASONS: ReadonlySet<RevocationReason> = new Set([
  RevocationReason.UNSPECIFIED,
  RevocationReason.KEY_COMPROMISE,
  RevocationReason.AFFILIATION_CHANGED,
  RevocationReason.SUPERSEDED,
  RevocationReason.CESSATION_OF_OPERATION,
]);

const MAX_NOTE = 1000;

/**
 * Revocation: who may, with which reason, exactly once. The database
 * decides "exactly once" (an UPDATE guarded on revokedAt IS NULL); there is
 * no un-revoke. The CRL of the certificate's environment is re-signed in the
 * same transaction, so it lists the certificate as soon as the mutation
 * returns. KEY_COMPROMISE also blocks the public key for every future
 * request of anyone (submitCsr and renewCertificate answer KEY_REUSE, and
 * signCsr refuses a request with that key that was pending already).
 *
 * A certificate may be revoked after it expired: the revocation is recorded
 * (status REVOKED, audit, notification, and for KEY_COMPROMISE the key block)
 * but the CRL, which lists only unexpired certificates, does not need it.
 */
export class RevocationService {
  constructor(
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly mutations: Mutations,
    private readonly crls: CrlService,
  ) {}

  reportKeyCompromise(viewer: Viewer | null, certificateId: string, note?: string | null): Promise<Certificate> {
    return this.revokeOnce("certificate.compromise", viewer, certificateId, RevocationReason.KEY_COMPROMISE, note ?? null);
  }

  revoke(viewer: Viewer | null, certificateId: string, reason: RevocationReason): Promise<Certificate> {
    return this.revokeOnce("certificate.revoke", viewer, certificateId, reason, null);
  }

  private revokeOnce(action: string, viewer: Viewer | null, certificateId: string, reason: RevocationReason, rawNote: string | null): Promise<Certificate> {
    return this.mutations.run(
      { action, targetType: "Certificate", targetId: certificateId, actor: viewer, details: { reason } },
      async (scope) => {
        const v = this.policy.requireViewer(viewer);
        const certificate = await scope.em.findOne(Certificate, { where: { id: certificateId } });
        if (!certificate || !(await this.policy.canReadKeyMaterial(v, certificate))) throw notFound("certificate");
        scope.audit.organizationId = certificate.organizationId;
        scope.audit.details = { reason, serialNumber: certificate.serialNumber, environment: certificate.environment, kind: certificate.kind };
        const operator = this.policy.isOperator(v);
        if (!operator && !(await this.policy.canActOnKeyMaterial(v, certificate))) {
          throw forbidden("only the certificate's organization, a delegated MSP or a KMS operator may revoke it");
        }
        const allowed = operator ? OPERATOR_REVOCATION_REASONS : OFFICER_REVOCATION_REASONS;
        if (!allowed.has(reason)) throw badInput("REASON_NOT_ALLOWED", `${reason} is not a revocation reason this viewer may give`);
        const note = validNote(rawNote);
        if (note) scope.audit.details = { ...scope.audit.details, note };
        if (certificate.revokedAt) throw alreadyRevoked(certificate);
        return this.revokeGuarded(scope, v, certificate, reason);
      },
    );
  }

  private async revokeGuarded(scope: MutationScope, viewer: Viewer, certificate: Certificate, reason: RevocationReason): Promise<Certificate> {
    const { em, audit, notify } = scope;
    // Whole seconds: what the CRL's revocationDate can say, so the API and the CRL agree.
    const revokedAt = new Date(Math.floor(this.clock.now().getTime() / 1000) * 1000);
    // The row's lifecycle as it is now (locked on PostgreSQL, as the expiry sweep locks it): what the tallies move from.
    const current = em.createQueryBuilder(Certificate, "c").select(["c.id", "c.lifecycle"]).where("c.id = :id", { id: certificate.id });
    if (em.connection.driver.options.type === "postgres") current.setLock("pessimistic_write");
    const from = (await current.getOne())?.lifecycle ?? certificate.lifecycle;
    const result = await em
      .createQueryBuilder()
      .update(Certificate)
      .set({ revokedAt, revocationReason: reason, lifecycle: CertificateStatus.REVOKED })
      .where('"id" = :id AND "revokedAt" IS NULL', { id: certificate.id })
      .execute();
    if (!result.affected) throw alreadyRevoked(certificate);
    Object.assign(certificate, { revokedAt, revocationReason: reason, lifecycle: CertificateStatus.REVOKED });
    await recordCertificateChanges(em, [{ certificate, from, to: CertificateStatus.REVOKED }]);

    const keyBlocked = reason === RevocationReason.KEY_COMPROMISE;
    if (keyBlocked) {
      await em
        .createQueryBuilder()
        .insert()
        .into(BlockedKey)
        .values({ publicKeyFingerprint: certificate.publicKeyFingerprint, certificateId: certificate.id, blockedAt: revokedAt })
        .orIgnore()
        .execute();
    }
    const crl = await this.crls.rebuild(em, certificate.environment);
    audit.details = {
      ...audit.details,
      revokedAt: revokedAt.toISOString(),
      keyBlocked,
      publicKeyFingerprint: certificate.publicKeyFingerprint,
      crlNumber: crl.crlNumber.toString(),
    };
    await notify({
      type: NotificationType.CERTIFICATE_REVOKED,
      organizationId: certificate.organizationId,
      certificateKind: certificate.kind,
      environment: certificate.environment,
      certificateId: certificate.id,
      message:
        `${viewer.officer.name} revoked the ${certificate.kind} certificate for ${certificate.commonName} (${certificate.environment}), ` +
        `serial ${certificate.serialNumber}, reason ${reason}.` +
        (keyBlocked ? " Its key is blocked from any future request; renew with a new key pair." : ""),
    });
    return certificate;
  }
}

const validNote = (raw: string | null) => freeText(raw, { field: "note", reason: "INVALID_NOTE", max: MAX_NOTE });

const alreadyRevoked = (certificate: Certificate) =>
  conflict("ALREADY_REVOKED", `certificate ${certificate.serialNumber} is already revoked; revocation cannot be changed or undone`);
