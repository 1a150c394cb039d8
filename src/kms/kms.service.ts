/**
 * The KMS's own certificates, as one service for the resolver, the routes
 * and the composition root. Each job is its own class:
 * - kms-certificates.ts: the stored certificates, their encodings and key pairs;
 * - kms-provisioning.ts: start-up provisioning and publication;
 * - kms-rotation.ts: rotation (with dual control) and retirement;
 * - kms-messaging.ts: CMS signing and decryption with the KMS's keys;
 * - kms-expiry.ts: expiry reminders, with the expiry scanner's rule.
 */
import type { EntityManager } from "typeorm";
import type { Mutations } from "../kernel/unit-of-work.js";
import type { Authorities } from "../certificates/authorities.js";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import type { CertificateStatus, Environment, KmsCertificatePurpose } from "../kernel/domain.js";
import type { KeyStore } from "../pki/keystore/index.js";
import type { AccessPolicy } from "../policy.js";
import type { Viewer } from "../viewer.js";
import type { DualControl } from "../dual-control.js";
import type { KmsCertificate } from "./kms-certificate.entity.js";
import { KmsCertificates } from "./kms-certificates.js";
import { KmsExpiryReminders } from "./kms-expiry.js";
import { KmsMessaging } from "./kms-messaging.js";
import type { KmsKeyAlgorithms } from "./kms-profiles.js";
import { KmsProvisioning } from "./kms-provisioning.js";
import type { KmsRotationApproval } from "./kms-rotation-approval.entity.js";
import { KmsRotation, type RotateKmsCertificate } from "./kms-rotation.js";

export { KMS_ROTATION_APPROVAL_MS, type RotateKmsCertificate } from "./kms-rotation.js";

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

export class KmsService {
  readonly certificates: KmsCertificates;
  readonly provisioning: KmsProvisioning;
  readonly rotation: KmsRotation;
  readonly messaging: KmsMessaging;
  readonly expiry: KmsExpiryReminders;

  constructor(
    db: Database,
    clock: Clock,
    policy: AccessPolicy,
    mutations: Mutations,
    keyStore: KeyStore,
    authorities: Authorities,
    options: KmsServiceOptions,
  ) {
    this.certificates = new KmsCertificates(db, clock, policy, keyStore, authorities);
    this.provisioning = new KmsProvisioning(db, clock, mutations, this.certificates, authorities, options);
    this.rotation = new KmsRotation(db, clock, policy, mutations, this.certificates, this.provisioning, options);
    this.messaging = new KmsMessaging(clock, this.certificates, authorities);
    this.expiry = new KmsExpiryReminders(db, clock, mutations, this.certificates, options.expiryReminderDays);
  }

  // Start-up
  ensureCurrentCertificates(): Promise<KmsCertificate[]> {
    return this.provisioning.ensureCurrentCertificates();
  }

  // Reads
  byIds(ids: readonly string[]): Promise<KmsCertificate[]> {
    return this.certificates.byIds(ids);
  }
  list(viewer: Viewer | null, environment: Environment, purpose?: KmsCertificatePurpose | null): Promise<KmsCertificate[]> {
    return this.certificates.list(viewer, environment, purpose);
  }
  current(environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsCertificate> {
    return this.certificates.current(environment, purpose);
  }
  tlsServerCredentials(environment: Environment): Promise<{ certPem: string; keyPem: string }> {
    return this.certificates.tlsServerCredentials(environment);
  }
  status(certificate: KmsCertificate): CertificateStatus {
    return this.certificates.status(certificate);
  }
  der(certificate: KmsCertificate): Uint8Array {
    return this.certificates.der(certificate);
  }
  pem(certificate: KmsCertificate): string {
    return this.certificates.pem(certificate);
  }
  chainPem(certificate: KmsCertificate): string {
    return this.certificates.chainPem(certificate);
  }

  // Rotation and retirement
  rotate(viewer: Viewer | null, input: RotateKmsCertificate): Promise<KmsCertificate> {
    return this.rotation.rotate(viewer, input);
  }
  approveRotation(viewer: Viewer | null, environment: Environment, purpose: KmsCertificatePurpose): Promise<KmsRotationApproval> {
    return this.rotation.approveRotation(viewer, environment, purpose);
  }
  retire(viewer: Viewer | null, id: string): Promise<KmsCertificate> {
    return this.rotation.retire(viewer, id);
  }

  // Messaging
  signMessage(environment: Environment, data: Uint8Array): Promise<Uint8Array> {
    return this.messaging.signMessage(environment, data);
  }
  decryptMessage(environment: Environment, envelopedDer: Uint8Array): Promise<Uint8Array> {
    return this.messaging.decryptMessage(environment, envelopedDer);
  }

  // Expiry reminders (run by the notifications' ExpiryScanner)
  scanExpiry(actor: Viewer | null = null): Promise<number> {
    return this.expiry.scanExpiry(actor);
  }
}
