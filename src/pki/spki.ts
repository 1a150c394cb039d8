/**
 * What a SubjectPublicKeyInfo holds: family, size/curve, and the identifiers
 * derived from it. Pure functions over DER; hashes from node:crypto.
 *
 * The SPKI is read with the strict DER walker of der.ts rather than the ASN.1
 * schema library: issuance analyzes the key and derives its identifier for
 * every certificate, and the schema decoder cost more than the signature.
 */
import { createHash } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { SubjectPublicKeyInfo } from "@peculiar/asn1-x509";
import { children, content, decodeOid, DerError, readTlv } from "./der.js";

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

/** The schema library's decoded SPKI (tests and callers that want the object form). */
export function parseSpki(spki: Uint8Array): SubjectPublicKeyInfo {
  return AsnConvert.parse(spki, SubjectPublicKeyInfo);
}

export interface SpkiParts {
  /** Dotted algorithm OID. */
  algorithm: string;
  /** The parameters TLV of the AlgorithmIdentifier, if present (a view into the input). */
  parameters: Uint8Array | undefined;
  /** The subjectPublicKey BIT STRING's bits, without the unused-bits octet (a view into the input). */
  subjectPublicKey: Uint8Array;
}

/**
 * Splits a SubjectPublicKeyInfo DER (exactly one TLV, nothing after it) into
 * its parts without copying. Throws DerError when it is not well-formed DER.
 */
export function readSpki(spki: Uint8Array): SpkiParts {
  const top = readTlv(spki, 0);
  if (top.tag !== 0x30 || top.end !== spki.length) throw new DerError("a SubjectPublicKeyInfo is one SEQUENCE");
  const fields = children(spki, top);
  const [algorithm, key] = fields;
  if (fields.length !== 2 || algorithm!.tag !== 0x30 || key!.tag !== 0x03) throw new DerError("a SubjectPublicKeyInfo is an AlgorithmIdentifier and a BIT STRING");
  const algorithmParts = children(spki, algorithm!);
  if (algorithmParts.length < 1 || algorithmParts.length > 2 || algorithmParts[0]!.tag !== 0x06) throw new DerError("malformed AlgorithmIdentifier");
  const bits = content(spki, key!);
  // Keys are whole octets: an unused-bits count other than 0 is not a key we issue for.
  if (bits.length < 1 || bits[0] !== 0) throw new DerError("the subjectPublicKey BIT STRING must have 0 unused bits");
  const params = algorithmParts[1];
  return {
    algorithm: decodeOid(content(spki, algorithmParts[0]!)),
    parameters: params ? spki.subarray(params.start, params.end) : undefined,
    subjectPublicKey: bits.subarray(1),
  };
}

/** RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, as content views. */
function readRsaPublicKey(der: Uint8Array): { modulus: Uint8Array; exponent: Uint8Array } {
  const top = readTlv(der, 0);
  if (top.tag !== 0x30 || top.end !== der.length) throw new DerError("an RSAPublicKey is one SEQUENCE");
  const parts = children(der, top);
  if (parts.length !== 2 || parts[0]!.tag !== 0x02 || parts[1]!.tag !== 0x02) throw new DerError("an RSAPublicKey is two INTEGERs");
  return { modulus: content(der, parts[0]!), exponent: content(der, parts[1]!) };
}

/** Throws (parse errors) when the SPKI is malformed; callers map that to their own error. */
export function analyzeKey(spki: Uint8Array): KeyInfo {
  const info = readSpki(spki);
  const oid = info.algorithm;
  if (oid === OID_RSA_ENCRYPTION || oid === OID_RSASSA_PSS) {
    const key = readRsaPublicKey(info.subjectPublicKey);
    const bits = bitLength(key.modulus);
    // An RSASSA-PSS-only key is an RSA key too, but we name it apart so that profiles can't admit it by accident.
    const prefix = oid === OID_RSASSA_PSS ? "RSA-PSS-" : "RSA-";
    return { family: "RSA", label: `${prefix}${bits}`, bits, exponent: bigintOf(key.exponent) };
  }
  if (oid === OID_EC_PUBLIC_KEY) {
    if (!info.parameters) return { family: "OTHER", label: "EC (no curve)" };
    // ECParameters ::= CHOICE { namedCurve OID, implicitCurve NULL, specifiedCurve SEQUENCE }
    const params = readTlv(info.parameters, 0);
    if (params.tag !== 0x06) return { family: "OTHER", label: "EC (explicit curve parameters)" };
    const namedCurve = decodeOid(content(info.parameters, params));
    const curve = CURVES[namedCurve];
    return curve ? { family: "EC", label: curve.label, curve: curve.name } : { family: "EC", label: `EC-${namedCurve}`, curve: namedCurve };
  }
  if (oid === OID_ED25519) return { family: "OTHER", label: "Ed25519" };
  if (oid === OID_ED448) return { family: "OTHER", label: "Ed448" };
  if (oid === OID_X25519) return { family: "OTHER", label: "X25519" };
  if (oid === OID_DSA) return { family: "OTHER", label: "DSA" };
  return { family: "OTHER", label: `unknown key algorithm ${oid}` };
}

/** "RSA-2048", "EC-P256", "Ed25519", ... */
export const describeKey = (spki: Uint8Array): string => analyzeKey(spki).label;

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value (without tag, length, unused-bits octet). */
export function subjectKeyIdentifier(spki: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(readSpki(spki).subjectPublicKey).digest());
}
