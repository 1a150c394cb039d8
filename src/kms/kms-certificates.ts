/**
 * The KMS's own certificates as stored: reads (current, valid set, list),
 * their encodings, and their key pairs from the key store. The jobs
 * (provisioning, rotation, messaging, expiry reminders) build on this.
 */
import type { EntityManager } from "typeorm";
import type { Authorities } from "../certificates/authorities.js";
import { certificateStatus } from "../certificates/certificate.service.js";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { CertificateStatus, Environment, KmsCertificatePurpose, OrganizationKind } from "../kernel/domain.js";
import { notFound } from "../kernel/errors.js";
import { Organization } from "../organizations/organization.entity.js";
import { certificateToPem } from "../pki/bundle.js";
import type { KeyAlgorithmName, KeyStore } from "../pki/keystore/index.js";
import { sha256Hex } from "../pki/spki.js";
import type { AccessPolicy } from "../policy.js";
import type { Viewer } from "../viewer.js";
import { KmsCertificate } from "./kms-certificate.entity.js";

export class KmsCertificates {
  private readonly keyCache = new Map<string, Promise<CryptoKeyPair>>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    readonly keyStore: KeyStore,
    private readonly authorities: Authorities,
  ) {}

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
  async validSet(environment: Environment, purpose: KmsCertificatePurpose, now: Date): Promise<KmsCertificate[]> {
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

  findCurrent(em: EntityManager, environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsCertificate | null> {
    return em.findOne(KmsCertificate, { where: { environment, purpose, current: true } });
  }

  async kmsOrganizationId(em: EntityManager = this.db.manager): Promise<string | null> {
    const kms = await em.findOne(Organization, { select: { id: true }, where: { kind: OrganizationKind.KMS } });
    return kms?.id ?? null;
  }

  /**
   * The certificate's key pair from the key store, checked against the
   * certificate. Looked up first without creating, so that a key missing from
   * the store is an error and never silently replaced by a new one.
   */
  keysOf(certificate: KmsCertificate): Promise<CryptoKeyPair> {
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

  /** For batched nested fields (Notification.kmsCertificate); callers have decided visibility. */
  byIds(ids: readonly string[]): Promise<KmsCertificate[]> {
    return this.db.findByIds(KmsCertificate, ids);
  }

  /** Drops a retired certificate's cached key pair. */
  forgetKey(id: string): void {
    this.keyCache.delete(id);
  }
}
