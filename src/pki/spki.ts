/**
 * What a SubjectPublicKeyInfo holds: family, size/curve, and the identifiers
 * derived from it. Pure functions over DER; hashes from node:crypto.
 */
import { createHash } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { SubjectPublicKeyInfo } from "@peculiar/asn1-x509";
import { RSAPublicKey } from "@peculiar/asn1-rsa";
import { ECParameters } from "@peculiar/asn1-ecc";

export const OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1";
export const OID_RSASSA_PSS = "1.2.840.113549.1.1.10";
export const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const OID_ED25519 = "1.3.101.112";
const OID_ED448 = "1.3.101.113";
const OID_X25519 = "1.3.101.110";
const OID_DSA = "1.2.840.10040.4.1";

const CURVES: Record<string, { name: string; label: string }> = {
  "1.2.840.10045.3.1.7": { name: "P-256", label: "EC-P256" },
  "1.3.132.0.34": { name: "P-384", label: "EC-P384" },
  "1.3.132.0.35": { name: "P-521", label: "EC-P521" },
  "1.3.132.0.10": { name: "secp256k1", label: "EC-secp256k1" },
  "1.2.840.10045.3.1.1": { name: "P-192", label: "EC-P192" },
  "1.3.132.0.33": { name: "P-224", label: "EC-P224" },
};

export type KeyInfo =
  | { family: "RSA"; label: string; bits: number; exponent: bigint }
  | { family: "EC"; label: string; curve: string }
  | { family: "OTHER"; label: string };

export const sha256Hex = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

export const toBytes = (buf: ArrayBuffer | ArrayBufferView): Uint8Array =>
  buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);

function bigintOf(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt("0x" + Buffer.from(bytes).toString("hex"));
}

function bitLength(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  if (i === bytes.length) return 0;
  return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]!));
}

export function parseSpki(spki: Uint8Array): SubjectPublicKeyInfo {
  return AsnConvert.parse(spki, SubjectPublicKeyInfo);
}

/** Throws (parse errors) when the SPKI is malformed; callers map that to their own error. */
export function analyzeKey(spki: Uint8Array): KeyInfo {
  const info = parseSpki(spki);
  const oid = info.algorithm.algorithm;
  if (oid === OID_RSA_ENCRYPTION || oid === OID_RSASSA_PSS) {
    const key = AsnConvert.parse(info.subjectPublicKey, RSAPublicKey);
    const bits = bitLength(toBytes(key.modulus));
    // An RSASSA-PSS-only key is an RSA key too, but we name it apart so that profiles can't admit it by accident.
    const prefix = oid === OID_RSASSA_PSS ? "RSA-PSS-" : "RSA-";
    return { family: "RSA", label: `${prefix}${bits}`, bits, exponent: bigintOf(toBytes(key.publicExponent)) };
  }
  if (oid === OID_EC_PUBLIC_KEY) {
    if (!info.algorithm.parameters) return { family: "OTHER", label: "EC (no curve)" };
    const params = AsnConvert.parse(info.algorithm.parameters, ECParameters);
    if (!params.namedCurve) return { family: "OTHER", label: "EC (explicit curve parameters)" };
    const curve = CURVES[params.namedCurve];
    return curve
      ? { family: "EC", label: curve.label, curve: curve.name }
      : { family: "EC", label: `EC-${params.namedCurve}`, curve: params.namedCurve };
  }
  if (oid === OID_ED25519) return { family: "OTHER", label: "Ed25519" };
  if (oid === OID_ED448) return { family: "OTHER", label: "Ed448" };
  if (oid === OID_X25519) return { family: "OTHER", label: "X25519" };
  if (oid === OID_DSA) return { family: "OTHER", label: "DSA" };
  return { family: "OTHER", label: `unknown key algorithm ${oid}` };
}

/** "RSA-2048", "EC-P256", "Ed25519", ... */
export const describeKey = (spki: Uint8Array): string => analyzeKey(spki).label;

/** sha256 (lowercase hex) of the SPKI DER: the key's identity across certificates, CSRs and the block list. */
export const spkiFingerprint = (spki: Uint8Array): string => sha256Hex(spki);

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value (without tag, length, unused-bits octet). */
export function subjectKeyIdentifier(spki: Uint8Array): Uint8Array {
  const bits = toBytes(parseSpki(spki).subjectPublicKey);
  return new Uint8Array(createHash("sha1").update(bits).digest());
}
