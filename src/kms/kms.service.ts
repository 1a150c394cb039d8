import { randomUUID } from "node:crypto";
import { In, type EntityManager } from "typeorm";
import type { MutationScope, Mutations, MutationSpec } from "../kernel/unit-of-work.js";
import type { Authorities } from "../certificates/authorities.js";
import { certificateStatus } from "../certificates/certificate.service.js";
import type { Clock } from "../kernel/clock.js";
import { isUniqueViolation } from "../kernel/driver.js";
import type { Database } from "../db/data-source.js";
import { CertificateStatus, Environment, KmsCertificatePurpose, NotificationType, OrganizationKind } from "../kernel/domain.js";
import { badInput, conflict, DomainError, notFound, preconditionFailed } from "../kernel/errors.js";
import { Organization } from "../organizations/organization.entity.js";
import { certificateToPem, rfc4514 } from "../pki/bundle.js";
import { decryptCms, signCms } from "../pki/cms.js";
import { issueCertificate, nameDer, newSerialHex } from "../pki/issue.js";
import type { KeyAlgorithmName, KeyStore } from "../pki/keystore.js";
import { sha256Hex, toBytes } from "../pki/spki.js";
import type { AccessPolicy } from "../policy.js";
import type { Viewer } from "../viewer.js";
import type { DualControl } from "../dual-control.js";
import { KmsCertificate } from "./kms-certificate.entity.js";
import { KmsRotationApproval } from "./kms-rotation-approval.entity.js";
import {
  KMS_DEFAULT_VALIDITY_DAYS,
  KMS_ENVIRONMENTS,
  KMS_MAX_VALIDITY_DAYS,
  KMS_PURPOSES,
  kmsKeyGeneration,
  kmsKeyLabel,
  kmsProfile,
  type KmsKeyAlgorithms,
} from "./kms-profiles.js";
import { DAY_MS } from "../kernel/time.js";

/** How long a rotation approval waits for the second operator. */
export const KMS_ROTATION_APPROVAL_MS = DAY_MS;

export interface KmsServiceOptions {
  keyAlgorithms: KmsKeyAlgorithms;
  /** KEYPORTAL_PUBLIC_URL: its host is the TLS_SERVER certificate's subjectAltName. */
  publicUrl: string;
  /** Reminder thresholds in days (config.expiryReminderDays). */
  expiryReminderDays: readonly number[];
  /** Re-signs the environment's CRL in the caller's transaction, so that a retirement is on the CRL served next. */
  crl?: { rebuild(em: EntityManager, environment: Environment): Promise<unknown> };
  /** Environments where a rotation needs another operator's approval first. */
  dualControl?: DualControl;
}

export interface RotateKmsCertificate {
  environment: Environment;
  purpose: KmsCertificatePurpose;
  validityDays?: number | null;
}

const PURPOSE_TITLES: Record<KmsCertificatePurpose, string> = {
  MESSAGE_SIGNING: "message signing",
  MESSAGE_ENCRYPTION: "message encryption",
  TLS_SERVER: "TLS server",
};

/** Thrown inside a publication transaction when another instance published first; never leaves this module. */
class AlreadyPublished extends Error {}

/** Thrown inside a reminder transaction when the reminder (or a nearer one) was sent already; never leaves this module. */
class AlreadyReminded extends Error {}

/**
 * The KMS's own certificates: one current certificate per environment and
 * purpose, issued by the environment's issuing CA over a key that stays in
 * the key store; rotation with overlap; and the KMS's own use of the keys
 * (CMS signing and decryption).
 *
 * Key generation and issuance happen before the publishing transaction (an
 * RSA key on a token can take a second, and the transaction holds the audit
 * lock); the transaction only swaps `current` under the unique index, so of
 * two racing publishers exactly one wins and the other's work is discarded.
 */
export class KmsService {
  private readonly keyCache = new Map<string, Promise<CryptoKeyPair>>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly mutations: Mutations,
    private readonly keyStore: KeyStore,
    private readonly authorities: Authorities,
    private readonly options: KmsServiceOptions,
  ) {}

  // -------------------------------------------------------------------------
  // Start-up
  // -------------------------------------------------------------------------

  /**
   * Makes sure every environment and purpose has a current certificate, and
   * that the key store holds the key of each current one. Idempotent; safe
   * when several instances start at once on one database.
   *
   * On a fresh installation (no participant or MSP yet) the first
   * certificates are part of the installation, like the CA hierarchy: no
   * audit event and no announcement, as there is nobody to tell. Where
   * organizations already exist (an upgrade, or a key store replaced), the
   * new certificate is published like a rotation: audited and announced.
   */
  byIds(ids: readonly string[]): Promise<KmsCertificate[]> {
    return this.db.findByIds(KmsCertificate, ids);
  }

  async ensureCurrentCertificates(): Promise<KmsCertificate[]> {
    // One at a time: on a PKCS#11 token, listing keys while another session generates one
    // can fail (CKR_GENERAL_ERROR reading a half-made object), and start-up is not hot.
    const all: KmsCertificate[] = [];
    for (const environment of KMS_ENVIRONMENTS) {
      for (const purpose of KMS_PURPOSES) {
        const certificate = await this.ensureCurrent(environment, purpose);
        // Fail at start, not at first use, when a key went missing from the store.
        await this.keysOf(certificate);
        all.push(certificate);
      }
    }
    return all;
  }

  private async ensureCurrent(environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsCertificate> {
    const existing = await this.findCurrent(this.db.manager, environment, purpose);
    if (existing) return existing;
    const prepared = await this.prepare(environment, purpose, KMS_DEFAULT_VALIDITY_DAYS);
    try {
      if (await this.anyoneToTell()) {
        await this.mutations.run(this.publishSpec(prepared, null, "kms.certificate.publish"), async (scope) => {
          if (await this.findCurrent(scope.em, environment, purpose)) throw new AlreadyPublished();
          await this.publish(scope, prepared, null);
        });
      } else {
        await this.db.transaction(async ({ em }) => {
          if (await this.findCurrent(em, environment, purpose)) throw new AlreadyPublished();
          await em.insert(KmsCertificate, prepared);
        });
      }
    } catch (error) {
      // Another instance published first (seen in the transaction, or by the unique index): use its certificate.
      if (!(error instanceof AlreadyPublished) && !isUniqueViolation(error)) throw error;
    }
    const stored = await this.findCurrent(this.db.manager, environment, purpose);
    if (!stored) throw new Error(`no current KMS certificate for ${environment} ${purpose} after creating one`);
    return stored;
  }

  private async anyoneToTell(): Promise<boolean> {
    const count = await this.db.manager.count(Organization, { where: { kind: In([OrganizationKind.PARTICIPANT, OrganizationKind.MSP]) } });
    return count > 0;
  }

  // -------------------------------------------------------------------------
  // Reads
  // -------------------------------------------------------------------------

  /** Every authenticated viewer: the certificates are public by nature (participants must have them). Current first, then newest. */
  async list(viewer: Viewer | null, environment: Environment, purpose?: KmsCertificatePurpose | null): Promise<KmsCertificate[]> {
    this.policy.requireViewer(viewer);
    const qb = this.db.manager
      .getRepository(KmsCertificate)
      .createQueryBuilder("k")
      .where("k.environment = :environment", { environment });
    if (purpose) qb.andWhere("k.purpose = :purpose", { purpose });
    return qb.orderBy("k.current", "DESC").addOrderBy("k.createdAt", "DESC").addOrderBy("k.id", "DESC").getMany();
  }

  /** The current certificate, for the public download route (no viewer: these certificates are public). */
  async current(environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsCertificate> {
    const certificate = await this.findCurrent(this.db.manager, environment, purpose);
    if (!certificate) throw notFound("KMS certificate");
    return certificate;
  }

  /**
   * The current TLS_SERVER certificate of an environment, with its chain, and
   * its private key, for serving HTTPS with the certificate participants pin.
   */
  async tlsServerCredentials(environment: Environment): Promise<{ certPem: string; keyPem: string }> {
    const certificate = await this.current(environment, KmsCertificatePurpose.TLS_SERVER);
    if (!this.keyStore.tlsPrivateKeyPem) {
      throw new Error("KEYPORTAL_TLS=kms needs the file key store: a PKCS#11 token's TLS key cannot be handed to Node's TLS (use KEYPORTAL_TLS_CERT/KEYPORTAL_TLS_KEY)");
    }
    const keyPem = await this.keyStore.tlsPrivateKeyPem(certificate.keyLabel);
    if (!keyPem) throw new Error(`the key of the ${environment} KMS TLS server certificate is missing from the key store`);
    return { certPem: this.chainPem(certificate), keyPem };
  }

  /** For batched nested fields (Notification.kmsCertificate); callers have decided visibility. */

  /** ACTIVE, EXPIRED, or REVOKED once retired: retirement takes a certificate out of the valid set before its notAfter. */
  status(certificate: KmsCertificate): CertificateStatus {
    return certificateStatus({ revokedAt: certificate.retiredAt, notAfter: certificate.notAfter }, this.clock.now());
  }

  der(certificate: KmsCertificate): Uint8Array {
    return new Uint8Array(Buffer.from(certificate.derBase64, "base64"));
  }

  pem(certificate: KmsCertificate): string {
    return certificateToPem(this.der(certificate));
  }

  /** The certificate, then the issuing CA and the root. */
  chainPem(certificate: KmsCertificate): string {
    return this.pem(certificate) + this.authorities.of(certificate.environment).chainPem;
  }

  /** Certificates in the valid set (not retired, not expired), current first, then newest. */
  private async validSet(environment: Environment, purpose: KmsCertificatePurpose, now: Date): Promise<KmsCertificate[]> {
    return this.db.manager
      .getRepository(KmsCertificate)
      .createQueryBuilder("k")
      .where("k.environment = :environment AND k.purpose = :purpose", { environment, purpose })
      .andWhere("k.retiredAt IS NULL AND k.notAfter > :now", { now: now.toISOString() })
      .orderBy("k.current", "DESC")
      .addOrderBy("k.createdAt", "DESC")
      .addOrderBy("k.id", "DESC")
      .getMany();
  }

  private findCurrent(em: EntityManager, environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsCertificate | null> {
    return em.findOne(KmsCertificate, { where: { environment, purpose, current: true } });
  }

  // -------------------------------------------------------------------------
  // Rotation and retirement
  // -------------------------------------------------------------------------

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
      prepared = await this.prepare(environment, purpose, validityDays);
    } catch (error) {
      // Refused before the transaction: audited like any other refusal.
      if (error instanceof DomainError) return this.mutations.run(spec, () => Promise.reject(error));
      throw error;
    }
    return this.mutations.run({ ...spec, organizationId: await this.kmsOrganizationId() }, async (scope) => {
      const v = this.policy.requireOperator(viewer);
      if (dualControl) {
        const approval = await this.standingApproval(scope.em, environment, purpose);
        await dualControl.assertApprovedByAnother(scope.em, approval?.approvedById ?? null, v, `rotating the ${environment} ${purpose} certificate`);
        // Used up once: of two rotations on one approval, one deletes it and the other finds nothing.
        const used = await scope.em.delete(KmsRotationApproval, { id: approval!.id });
        if (!used.affected) throw preconditionFailed("SECOND_APPROVAL_REQUIRED", "the approval was used by another rotation meanwhile");
        scope.audit.details = { ...scope.audit.details, approvedById: approval!.approvedById };
      }
      const previous = await this.findCurrent(scope.em, environment, purpose);
      if (previous) {
        // Guarded: if a concurrent rotation already replaced it, this one loses.
        const result = await scope.em.update(KmsCertificate, { id: previous.id, current: true }, { current: false });
        if (!result.affected) throw concurrentRotation();
      }
      try {
        await this.publish(scope, prepared, previous);
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
        audit.organizationId = await this.kmsOrganizationId(em);
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
      this.keyCache.delete(id);
      // On the environment's CRL (SUPERSEDED) from now on, for relying parties that check it.
      await this.options.crl?.rebuild(em, certificate.environment);
      return Object.assign(certificate, { retiredAt: now, retiredById: v.officer.id });
    });
  }

  /** A new key in the key store and a certificate for it from the environment's issuing CA; not stored yet. */
  private async prepare(environment: Environment, purpose: KmsCertificatePurpose, validityDays: number): Promise<KmsCertificate> {
    const now = this.clock.now();
    const profile = kmsProfile(environment, purpose, this.options.keyAlgorithms, this.options.publicUrl);
    const labels = await this.db.manager.find(KmsCertificate, { select: { keyLabel: true }, where: { environment, purpose } });
    // The next generation. Two racing publishers pick the same label and so the same key (the
    // key store converges on one pair per label); only one of them gets to certify it.
    const generation = Math.max(0, ...labels.map((row) => kmsKeyGeneration(row.keyLabel))) + 1;
    const keyLabel = kmsKeyLabel(environment, purpose, generation);
    const keys = await this.keyStore.getOrCreateKeyPair(keyLabel, profile.keyAlgorithm, profile.keyPurpose);
    const spki = new Uint8Array(await this.keyStore.crypto.subtle.exportKey("spki", keys.publicKey));
    const ca = this.authorities.of(environment);
    const notBefore = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const notAfter = new Date(notBefore.getTime() + validityDays * DAY_MS);
    const serialNumber = newSerialHex();
    const subject = nameDer(profile.subject);
    const der = await issueCertificate({
      subject,
      spki,
      serialHex: serialNumber,
      notBefore,
      notAfter,
      keyUsage: profile.keyUsage,
      extendedKeyUsage: profile.extendedKeyUsage,
      subjectAltNames: profile.subjectAltNames,
      crlUrl: ca.crlUrl,
      authorityInfoAccess: ca.authorityInfoAccess,
      issuer: ca.issuer,
      lint: { role: "leaf" },
    });
    return this.db.manager.create(KmsCertificate, {
      id: randomUUID(),
      environment,
      purpose,
      keyLabel,
      keyAlgorithm: profile.keyAlgorithm,
      keyId: sha256Hex(spki),
      current: true,
      serialNumber,
      subject: rfc4514(toBytes(subject)),
      notBefore,
      notAfter,
      fingerprintSha256: sha256Hex(der),
      derBase64: Buffer.from(der).toString("base64"),
      publishedAt: now,
      retiredAt: null,
      retiredById: null,
      createdAt: now,
    });
  }

  private publishSpec(certificate: KmsCertificate, viewer: Viewer | null, action: string): MutationSpec {
    return {
      action,
      targetType: "KmsCertificate",
      targetId: certificate.id,
      actor: viewer,
      details: { environment: certificate.environment, purpose: certificate.purpose },
    };
  }

  /** Inserts a prepared certificate as current and announces it to every participant and MSP. */
  private async publish(scope: MutationScope, certificate: KmsCertificate, previous: KmsCertificate | null): Promise<void> {
    const { em, audit, notify } = scope;
    await em.insert(KmsCertificate, certificate);
    audit.targetId = certificate.id;
    audit.organizationId ??= await this.kmsOrganizationId(em);
    audit.details = {
      ...audit.details,
      serialNumber: certificate.serialNumber,
      keyId: certificate.keyId,
      notAfter: certificate.notAfter.toISOString(),
      previousId: previous?.id ?? null,
    };
    const { environment, purpose } = certificate;
    const path = `${this.options.publicUrl}/kms/${environment}/${purpose.toLowerCase()}.pem`;
    await notify({
      type: NotificationType.KMS_CERTIFICATE_PUBLISHED,
      organizationId: null,
      // Every participant and MSP organization hears it (NotificationAudience.PARTICIPANTS_AND_MSPS).
      audience: "PARTICIPANTS_AND_MSPS",
      environment,
      kmsCertificateId: certificate.id,
      message:
        `The KMS published a new ${PURPOSE_TITLES[purpose]} certificate for ${environment}: serial ${certificate.serialNumber}, ` +
        `key id ${certificate.keyId}, valid ${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()}. ` +
        (previous
          ? `The previous certificate (serial ${previous.serialNumber}) stays valid until ${previous.notAfter.toISOString()} or its retirement. `
          : "") +
        `Fetch the new one (kmsCertificates, or ${path}) before the KMS starts using it.`,
    });
  }

  private async kmsOrganizationId(em: EntityManager = this.db.manager): Promise<string | null> {
    const kms = await em.findOne(Organization, { select: { id: true }, where: { kind: OrganizationKind.KMS } });
    return kms?.id ?? null;
  }

  // -------------------------------------------------------------------------
  // The KMS's own use of its keys (messaging side; not exposed over GraphQL)
  // -------------------------------------------------------------------------

  /** CMS SignedData (attached, SHA-256) over `data`, signed in the key store with the current MESSAGE_SIGNING key. */
  async signMessage(environment: Environment, data: Uint8Array): Promise<Uint8Array> {
    const certificate = await this.current(environment, KmsCertificatePurpose.MESSAGE_SIGNING);
    const now = this.clock.now();
    if (certificate.notAfter.getTime() <= now.getTime()) {
      throw preconditionFailed("KMS_CERTIFICATE_EXPIRED", `the current ${environment} message signing certificate has expired; rotate it`);
    }
    const keys = await this.keysOf(certificate);
    const issuing = new Uint8Array(this.authorities.of(environment).issuing.rawData);
    return signCms(data, this.der(certificate), keys, this.keyStore.crypto, { signingTime: now, certificates: [issuing] });
  }

  /**
   * Decrypts CMS EnvelopedData addressed to one of the environment's
   * MESSAGE_ENCRYPTION certificates in the valid set: the current one first,
   * then those still overlapping. Retired and expired certificates are not
   * tried: a sender who still uses them must fetch the current one.
   */
  async decryptMessage(environment: Environment, envelopedDer: Uint8Array): Promise<Uint8Array> {
    const candidates = await this.validSet(environment, KmsCertificatePurpose.MESSAGE_ENCRYPTION, this.clock.now());
    for (const certificate of candidates) {
      try {
        return await decryptCms(envelopedDer, this.der(certificate), await this.keysOf(certificate), this.keyStore.crypto);
      } catch (error) {
        if (error instanceof DomainError && error.reason === "CMS_RECIPIENT_NOT_FOUND") continue;
        throw error;
      }
    }
    throw badInput("CMS_RECIPIENT_NOT_FOUND", `The message is not encrypted to a current or overlapping KMS ${environment} encryption certificate.`);
  }

  /**
   * The certificate's key pair from the key store, checked against the
   * certificate. Looked up first without creating, so that a key missing from
   * the store is an error and never silently replaced by a new one.
   */
  private keysOf(certificate: KmsCertificate): Promise<CryptoKeyPair> {
    let pending = this.keyCache.get(certificate.id);
    if (!pending) {
      pending = (async () => {
        const found = await this.keyStore.findKeyPair(certificate.keyLabel);
        if (!found) throw new Error(`the key ${certificate.keyLabel} of KMS certificate ${certificate.serialNumber} is missing from the key store`);
        const purpose = certificate.purpose === KmsCertificatePurpose.MESSAGE_ENCRYPTION ? "decrypt" : "sign";
        const keys = await this.keyStore.getOrCreateKeyPair(certificate.keyLabel, certificate.keyAlgorithm as KeyAlgorithmName, purpose);
        const spki = new Uint8Array(await this.keyStore.crypto.subtle.exportKey("spki", keys.publicKey));
        if (sha256Hex(spki) !== certificate.keyId) {
          throw new Error(`the key ${certificate.keyLabel} in the key store does not match KMS certificate ${certificate.serialNumber}`);
        }
        return keys;
      })();
      this.keyCache.set(certificate.id, pending);
      pending.catch(() => this.keyCache.delete(certificate.id));
    }
    return pending;
  }

  // -------------------------------------------------------------------------
  // Expiry reminders
  // -------------------------------------------------------------------------

  /**
   * CERTIFICATE_EXPIRING to the KMS organization for each current KMS
   * certificate that reached a reminder threshold (config.expiryReminderDays),
   * with the notifications' expiry rule: the reminder due is for the smallest
   * threshold T with at most T days left, so one reminder per threshold as
   * time passes, and a certificate first seen inside several thresholds gets
   * only the nearest one, never a burst of stale ones. Sent once per
   * certificate and threshold: checked inside the (serialized) transaction,
   * and dedupeKey kms-expiring:<id>:<T> is unique in the database. Only
   * current certificates: an overlapping predecessor running out is the plan,
   * not news. Returns the number of reminders emitted. Runs as part of the
   * notifications' ExpiryScanner (its lease, schedule and runExpiryScan).
   */
  async scanExpiry(actor: Viewer | null = null): Promise<number> {
    const thresholds = [...new Set(this.options.expiryReminderDays)].sort((a, b) => a - b);
    if (thresholds.length === 0) return 0;
    const now = this.clock.now();
    const horizon = new Date(now.getTime() + thresholds[thresholds.length - 1]! * DAY_MS);
    const due = await this.db.manager
      .getRepository(KmsCertificate)
      .createQueryBuilder("k")
      .where("k.current = :current", { current: true })
      .andWhere("k.retiredAt IS NULL AND k.notAfter > :now AND k.notAfter <= :horizon", { now: now.toISOString(), horizon: horizon.toISOString() })
      .orderBy("k.notAfter", "ASC")
      .getMany();
    let emitted = 0;
    for (const certificate of due) {
      const left = certificate.notAfter.getTime() - now.getTime();
      const threshold = thresholds.find((days) => left <= days * DAY_MS);
      if (threshold === undefined) continue;
      if (await this.remind(certificate, threshold, Math.floor(left / DAY_MS), actor)) emitted++;
    }
    return emitted;
  }

  /** Sends the reminder for `threshold` unless this one or a nearer one was sent already. */
  private async remind(certificate: KmsCertificate, threshold: number, daysLeft: number, actor: Viewer | null): Promise<boolean> {
    const kmsId = await this.kmsOrganizationId();
    if (!kmsId) return false;
    const { environment, purpose } = certificate;
    try {
      await this.mutations.run(
        {
          action: "kms.certificate.expiring",
          targetType: "KmsCertificate",
          targetId: certificate.id,
          organizationId: kmsId,
          actor,
          details: { environment, purpose, serialNumber: certificate.serialNumber, threshold },
        },
        async ({ em, notify }) => {
          if (await this.remindedAtOrBelow(em, certificate.id, threshold)) throw new AlreadyReminded();
          await notify({
            type: NotificationType.CERTIFICATE_EXPIRING,
            organizationId: kmsId,
            environment,
            kmsCertificateId: certificate.id,
            daysUntilExpiry: threshold,
            dedupeKey: `kms-expiring:${certificate.id}:${threshold}`,
            message:
              `The KMS's own ${PURPOSE_TITLES[purpose]} certificate for ${environment} (serial ${certificate.serialNumber}) expires on ` +
              `${certificate.notAfter.toISOString()}, in ${daysLeft} day${daysLeft === 1 ? "" : "s"}. ` +
              `Rotate it (rotateKmsCertificate) so that participants have the new one in time.`,
          });
        },
      );
      return true;
    } catch (error) {
      // Sent already (by an earlier scan, or another instance's at the same moment).
      if (error instanceof AlreadyReminded || isUniqueViolation(error)) return false;
      throw error;
    }
  }

  private async remindedAtOrBelow(em: EntityManager, kmsCertificateId: string, threshold: number): Promise<boolean> {
    const rows: Array<{ n: number | string }> = await em
      .createQueryBuilder()
      .select("COUNT(*)", "n")
      .from("notifications", "n")
      .where(`n."kmsCertificateId" = :id AND n.type = :type AND n."daysUntilExpiry" <= :threshold`, {
        id: kmsCertificateId,
        type: NotificationType.CERTIFICATE_EXPIRING,
        threshold,
      })
      .getRawMany();
    return Number(rows[0]?.n ?? 0) > 0;
  }
}

const concurrentRotation = () => conflict("CONCURRENT_ROTATION", "another rotation of this KMS certificate finished first; list the certificates and retry if needed");
