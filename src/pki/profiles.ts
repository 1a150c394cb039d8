/**
 * Certificate profiles: what a participant's certificate of each kind may
 * contain. The profile, not the CSR, decides the extensions (design.md,
 * "Certificate profiles"); these are the defaults, the app may configure others.
 */
import { CertificateKind } from "../kernel/domain.js";

/** Key usage bit names as in RFC 5280 section 4.2.1.3 (camelCase, as OpenSSL's config names them). */
export type KeyUsageName =
  | "digitalSignature"
  | "nonRepudiation"
  | "keyEncipherment"
  | "dataEncipherment"
  | "keyAgreement"
  | "keyCertSign"
  | "cRLSign";

/** Extended key usage names understood by issue.ts (the OIDs live there). */
export type ExtendedKeyUsageName =
  | "serverAuth"
  | "clientAuth"
  | "codeSigning"
  | "emailProtection"
  | "timeStamping"
  | "OCSPSigning"
  | "documentSigning";

export interface CertificateProfile {
  kind: CertificateKind;
  /** "RSA-2048", "RSA-3072", "RSA-4096", "EC-P256", "EC-P384" (the names describeKey() returns). */
  allowedKeyAlgorithms: string[];
  /** Short attribute names (RFC 4514): each must appear exactly once in the subject. */
  requiredSubjectAttributes: string[];
  /** Short attribute names that may appear at all; anything else is refused. */
  allowedSubjectAttributes: string[];
  /**
   * Key usage bits. "keyEncipherment" and "dataEncipherment" are applied only
   * to RSA keys: an EC key cannot encipher, and a certificate claiming so is wrong.
   */
  keyUsage: string[];
  extendedKeyUsage: string[];
  defaultValidityDays: number;
  maxValidityDays: number;
}

const ALL_KEYS = ["RSA-2048", "RSA-3072", "RSA-4096", "EC-P256", "EC-P384"];
const RSA_KEYS = ["RSA-2048", "RSA-3072", "RSA-4096"];
const REQUIRED = ["CN", "O", "C"];
const ALLOWED = ["CN", "O", "C", "OU", "L", "ST"];

function profile(kind: CertificateKind, keys: string[], keyUsage: KeyUsageName[], eku: ExtendedKeyUsageName[]): CertificateProfile {
  return {
    kind,
    allowedKeyAlgorithms: [...keys],
    requiredSubjectAttributes: [...REQUIRED],
    allowedSubjectAttributes: [...ALLOWED],
    keyUsage: [...keyUsage],
    extendedKeyUsage: [...eku],
    defaultValidityDays: 365,
    maxValidityDays: 825,
  };
}

/**
 * Every leaf is usable for its kind only: each carries an extKeyUsage, so no
 * verifier treats it as any-purpose (a certificate without one passes
 * `openssl verify -purpose sslserver`).
 *
 * - MTLS_CLIENT: clientAuth with digitalSignature alone. A TLS client only
 *   signs (its handshake signature); keyEncipherment would claim RSA key
 *   transport, which a client never does (zlint e_key_usage_and_extended_key_usage_inconsistent).
 * - SIGNING: emailProtection and documentSigning (RFC 9336). The messages
 *   participants and the KMS exchange are CMS (RFC 5652), S/MIME's format,
 *   and CMS verifiers (openssl cms -verify) check the S/MIME purpose;
 *   documentSigning tells any other relying party what the signature is for.
 *   Neither permits TLS, code signing, time stamping or OCSP.
 * - ENCRYPTION: emailProtection, the one registered purpose for enveloping
 *   CMS content (RFC 9336 defines no document-encryption purpose); with
 *   keyEncipherment/dataEncipherment only, it cannot sign either.
 */
export const DEFAULT_PROFILES: Record<CertificateKind, CertificateProfile> = {
  [CertificateKind.MTLS_CLIENT]: profile(CertificateKind.MTLS_CLIENT, ALL_KEYS, ["digitalSignature"], ["clientAuth"]),
  [CertificateKind.SIGNING]: profile(CertificateKind.SIGNING, ALL_KEYS, ["digitalSignature", "nonRepudiation"], ["emailProtection", "documentSigning"]),
  [CertificateKind.ENCRYPTION]: profile(CertificateKind.ENCRYPTION, RSA_KEYS, ["keyEncipherment", "dataEncipherment"], ["emailProtection"]),
};

const ENCIPHERMENT = new Set(["keyEncipherment", "dataEncipherment"]);

/** The key usages a profile grants a key: only an RSA key can encipher, so an EC certificate never claims it. */
export function grantedKeyUsage(profile: CertificateProfile, family: string): string[] {
  return profile.keyUsage.filter((u) => family === "RSA" || !ENCIPHERMENT.has(u));
}
