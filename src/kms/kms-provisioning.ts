/**
 * Start-up provisioning and publication of the KMS's own certificates: one
 * current certificate per environment and purpose, issued by the
 * environment's issuing CA over a key that stays in the key store.
 *
 * Key generation and issuance happen before the publishing transaction (an
 * RSA key on a token can take a second, and the transaction holds the audit
 * lock); the transaction only swaps `current` under the unique index, so of
 * two racing publishers exactly one wins and the other's work is discarded.
 */
import { randomUUID } from "node:crypto";
import { In } from "typeorm";
import type { MutationScope, Mutations, MutationSpec } from "../kernel/unit-of-work.js";
import type { Authorities } from "../certificates/authorities.js";
import type { Clock } from "../kernel/clock.js";
import { isUniqueViolation } from "../kernel/driver.js";
import type { Database } from "../db/data-source.js";
import { Environment, KmsCertificatePurpose, NotificationType, OrganizationKind } from "../kernel/domain.js";
import { Organization } from "../organizations/organization.entity.js";
import { rfc4514 } from "../pki/bundle.js";
import { issueCertificate, nameDer, newSerialHex } from "../pki/issue.js";
import { sha256Hex, toBytes } from "../pki/spki.js";
import type { Viewer } from "../viewer.js";
import { KmsCertificate } from "./kms-certificate.entity.js";
import type { KmsCertificates } from "./kms-certificates.js";
import { KMS_DEFAULT_VALIDITY_DAYS, KMS_ENVIRONMENTS, KMS_PURPOSES, kmsKeyGeneration, kmsKeyLabel, kmsProfile, type KmsKeyAlgorithms } from "./kms-profiles.js";

const DAY_MS = 86_400_000;

export const PURPOSE_TITLES: Record<KmsCertificatePurpose, string> = {
  MESSAGE_SIGNING: "message signing",
  MESSAGE_ENCRYPTION: "message encryption",
  TLS_SERVER: "TLS server",
};

/** Thrown inside a publication transaction when another instance published first; never leaves this module. */
class AlreadyPublished extends Error {}

export interface KmsProvisioningOptions {
  keyAlgorithms: KmsKeyAlgorithms;
  /** KEYPORTAL_PUBLIC_URL: its host is the TLS_SERVER certificate's subjectAltName. */
  publicUrl: string;
}

export class KmsProvisioning {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly mutations: Mutations,
    private readonly certs: KmsCertificates,
    private readonly authorities: Authorities,
    private readonly options: KmsProvisioningOptions,
  ) {}

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
  async ensureCurrentCertificates(): Promise<KmsCertificate[]> {
    // One at a time: on a PKCS#11 token, listing keys while another session generates one
    // can fail (CKR_GENERAL_ERROR reading a half-made object), and start-up is not hot.
    const all: KmsCertificate[] = [];
    for (const environment of KMS_ENVIRONMENTS) {
      for (const purpose of KMS_PURPOSES) {
        const certificate = await this.ensureCurrent(environment, purpose);
        // Fail at start, not at first use, when a key went missing from the store.
        await this.certs.keysOf(certificate);
        all.push(certificate);
      }
    }
    return all;
  }

  private async ensureCurrent(environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsCertificate> {
    const existing = await this.certs.findCurrent(this.db.manager, environment, purpose);
    if (existing) return existing;
    const prepared = await this.prepare(environment, purpose, KMS_DEFAULT_VALIDITY_DAYS);
    try {
      if (await this.anyoneToTell()) {
        await this.mutations.run(this.publishSpec(prepared, null, "kms.certificate.publish"), async (scope) => {
          if (await this.certs.findCurrent(scope.em, environment, purpose)) throw new AlreadyPublished();
          await this.publish(scope, prepared, null);
        });
      } else {
        await this.db.transaction(async ({ em }) => {
          if (await this.certs.findCurrent(em, environment, purpose)) throw new AlreadyPublished();
          await em.insert(KmsCertificate, prepared);
        });
      }
    } catch (error) {
      // Another instance published first (seen in the transaction, or by the unique index): use its certificate.
      if (!(error instanceof AlreadyPublished) && !isUniqueViolation(error)) throw error;
    }
    const stored = await this.certs.findCurrent(this.db.manager, environment, purpose);
    if (!stored) throw new Error(`no current KMS certificate for ${environment} ${purpose} after creating one`);
    return stored;
  }

  private async anyoneToTell(): Promise<boolean> {
    const count = await this.db.manager.count(Organization, { where: { kind: In([OrganizationKind.PARTICIPANT, OrganizationKind.MSP]) } });
    return count > 0;
  }

  /** A new key in the key store and a certificate for it from the environment's issuing CA; not stored yet. */
  async prepare(environment: Environment, purpose: KmsCertificatePurpose, validityDays: number): Promise<KmsCertificate> {
    const now = this.clock.now();
    const profile = kmsProfile(environment, purpose, this.options.keyAlgorithms, this.options.publicUrl);
    const labels = await this.db.manager.find(KmsCertificate, { select: { keyLabel: true }, where: { environment, purpose } });
    // The next generation. Two racing publishers pick the same label and so the same key (the
    // key store converges on one pair per label); only one of them gets to certify it.
    const generation = Math.max(0, ...labels.map((row) => kmsKeyGeneration(row.keyLabel))) + 1;
    const keyLabel = kmsKeyLabel(environment, purpose, generation);
    const keys = await this.certs.keyStore.getOrCreateKeyPair(keyLabel, profile.keyAlgorithm, profile.keyPurpose);
    const spki = new Uint8Array(await this.certs.keyStore.crypto.subtle.exportKey("spki", keys.publicKey));
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

  publishSpec(certificate: KmsCertificate, viewer: Viewer | null, action: string): MutationSpec {
    return {
      action,
      targetType: "KmsCertificate",
      targetId: certificate.id,
      actor: viewer,
      details: { environment: certificate.environment, purpose: certificate.purpose },
    };
  }

  /** Inserts a prepared certificate as current and announces it to every participant and MSP. */
  async publish(scope: MutationScope, certificate: KmsCertificate, previous: KmsCertificate | null): Promise<void> {
    const { em, audit, notify } = scope;
    await em.insert(KmsCertificate, certificate);
    audit.targetId = certificate.id;
    audit.organizationId ??= await this.certs.kmsOrganizationId(em);
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
}
