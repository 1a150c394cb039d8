/**
 * Certificate profiles: what a participant's certificate of each kind may
 * contain. The profile, not the CSR, decides the extensions (design.md,
 * "Certificate profiles"); these are the defaults, the app may configure others.
 */
import { CertificateKind } from "../domain.js";

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
export type ExtendedKeyUsageName = "serverAuth" | "clientAuth" | "codeSigning" | "emailProtection" | "timeStamping" | "OCSPSigning";

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

export const DEFAULT_PROFILES: Record<CertificateKind, CertificateProfile> = {
  [CertificateKind.MTLS_CLIENT]: profile(
    CertificateKind.MTLS_CLIENT,
    ALL_KEYS,
    ["digitalSignature", "keyEncipherment"],
    ["clientAuth"],
  ),
  [CertificateKind.SIGNING]: profile(CertificateKind.SIGNING, ALL_KEYS, ["digitalSignature", "nonRepudiation"], []),
  [CertificateKind.ENCRYPTION]: profile(
    CertificateKind.ENCRYPTION,
    RSA_KEYS,
    ["keyEncipherment", "dataEncipherment"],
    [],
  ),
};
