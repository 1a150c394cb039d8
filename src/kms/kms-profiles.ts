/**
 * What each KMS certificate looks like: key algorithm and purpose in the key
 * store, subject, key usages and extended key usages. Pure: no clock, no
 * database, no key store.
 */
import { isIP } from "node:net";
import { Environment, KmsCertificatePurpose } from "../kernel/domain.js";
import type { SubjectAltName } from "../pki/issue.js";
import type { KeyAlgorithmName, KeyPurpose } from "../pki/keystore/index.js";
import { KMS_ORGANIZATION } from "../pki/ca.js";

export const KMS_PURPOSES = [KmsCertificatePurpose.MESSAGE_SIGNING, KmsCertificatePurpose.MESSAGE_ENCRYPTION, KmsCertificatePurpose.TLS_SERVER] as const;
export const KMS_ENVIRONMENTS = [Environment.MTF, Environment.PRODUCTION] as const;

export const KMS_DEFAULT_VALIDITY_DAYS = 365;
export const KMS_MAX_VALIDITY_DAYS = 825;

/** Key algorithm per purpose. Message encryption is always RSA: CMS key transport (openssl cms -encrypt) needs an RSA recipient. */
export interface KmsKeyAlgorithms {
  [KmsCertificatePurpose.MESSAGE_SIGNING]: KeyAlgorithmName;
  [KmsCertificatePurpose.MESSAGE_ENCRYPTION]: "RSA-2048" | "RSA-3072";
  [KmsCertificatePurpose.TLS_SERVER]: KeyAlgorithmName;
}

/**
 * The KMS keys follow the CA's key algorithm (KEYPORTAL_CA_KEY_ALGORITHM):
 * with EC CAs, P-256 for signing and TLS and RSA-2048 for encryption; an
 * installation that chose RSA CAs (an HSM or a policy that wants RSA) gets
 * RSA-3072 everywhere.
 */
export function kmsKeyAlgorithms(caKeyAlgorithm: "EC-P256" | "RSA-3072"): KmsKeyAlgorithms {
  if (caKeyAlgorithm === "RSA-3072") {
    return { MESSAGE_SIGNING: "RSA-3072", MESSAGE_ENCRYPTION: "RSA-3072", TLS_SERVER: "RSA-3072" };
  }
  return { MESSAGE_SIGNING: "EC-P256", MESSAGE_ENCRYPTION: "RSA-2048", TLS_SERVER: "EC-P256" };
}

export interface KmsProfile {
  purpose: KmsCertificatePurpose;
  keyAlgorithm: KeyAlgorithmName;
  keyPurpose: KeyPurpose;
  /** [type, value] in DER order, most general first. */
  subject: ReadonlyArray<readonly [string, string]>;
  keyUsage: string[];
  extendedKeyUsage: string[];
  subjectAltNames: SubjectAltName[];
}

const TITLES: Record<KmsCertificatePurpose, string> = {
  MESSAGE_SIGNING: "Message Signing",
  MESSAGE_ENCRYPTION: "Message Encryption",
  TLS_SERVER: "TLS Server",
};

/** The host of KEYPORTAL_PUBLIC_URL as a subjectAltName: an IP address entry for a literal address, DNS otherwise. */
export function subjectAltNameOf(publicUrl: string): SubjectAltName {
  const host = new URL(publicUrl).hostname.replace(/^\[(.*)\]$/, "$1");
  return isIP(host) ? { type: "ip", value: host } : { type: "dns", value: host.toLowerCase() };
}

export function kmsProfile(environment: Environment, purpose: KmsCertificatePurpose, algorithms: KmsKeyAlgorithms, publicUrl: string): KmsProfile {
  const keyAlgorithm = algorithms[purpose];
  const rsa = keyAlgorithm.startsWith("RSA-");
  const subject = [
    ["C", KMS_ORGANIZATION.country],
    ["O", KMS_ORGANIZATION.name],
    ["CN", `KeyPortal KMS ${environment} ${TITLES[purpose]}`],
  ] as const;
  switch (purpose) {
    case KmsCertificatePurpose.MESSAGE_SIGNING:
      return {
        purpose,
        keyAlgorithm,
        keyPurpose: "sign",
        subject,
        keyUsage: ["digitalSignature", "nonRepudiation"],
        // As a participant's SIGNING certificate (pki/profiles.ts says why).
        extendedKeyUsage: ["emailProtection", "documentSigning"],
        subjectAltNames: [],
      };
    case KmsCertificatePurpose.MESSAGE_ENCRYPTION:
      return {
        purpose,
        keyAlgorithm,
        keyPurpose: "decrypt",
        subject,
        keyUsage: ["keyEncipherment", "dataEncipherment"],
        extendedKeyUsage: ["emailProtection"],
        subjectAltNames: [],
      };
    case KmsCertificatePurpose.TLS_SERVER:
      return {
        purpose,
        keyAlgorithm,
        keyPurpose: "sign",
        subject,
        // keyEncipherment only means something for RSA key transport (TLS 1.2 RSA kx); an EC key can't do it.
        keyUsage: rsa ? ["digitalSignature", "keyEncipherment"] : ["digitalSignature"],
        extendedKeyUsage: ["serverAuth"],
        subjectAltNames: [subjectAltNameOf(publicUrl)],
      };
  }
}

/** Key store label of the n-th key of an environment and purpose: kms-mtf-message_signing-1, kms-production-tls_server-3, ... */
export function kmsKeyLabel(environment: Environment, purpose: KmsCertificatePurpose, n: number): string {
  return `kms-${environment.toLowerCase()}-${purpose.toLowerCase()}-${n}`;
}

/** The n of a label made by kmsKeyLabel (0 for anything else). */
export function kmsKeyGeneration(label: string): number {
  const match = /-(\d+)$/.exec(label);
  return match ? Number(match[1]) : 0;
}
