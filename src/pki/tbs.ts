/**
 * The certificate encoder: TBSCertificate and Certificate written directly as
 * DER, one allocation per structure, with everything that does not change
 * between certificates (issuer Name, signature AlgorithmIdentifier, fixed
 * extensions) passed in as ready-made bytes.
 *
 * It produces exactly the bytes @peculiar/x509's X509CertificateGenerator
 * produced for the same inputs (test/pki/tbs.test.ts compares them, with the
 * library path in test/pki/library-path.ts as the oracle): same field order,
 * same extension order and encodings, critical only where set, DEFAULT values
 * left out as DER requires. The library path ran at a few hundred certificates
 * per second on one core here (p50 ~2 ms), nearly all of it in its ASN.1 object
 * layer and garbage collection; this spends some tens of microseconds (key
 * analysis and SKI hash included), leaving the signature as the cost
 * (`npm run bench`).
 *
 * The DER primitives are der.ts's, the signature algorithm algorithms.ts's.
 * Pure functions except signCertificate, which signs through the key store
 * (the signer port; for PKCS#11 that is its session pool).
 */
import { isIP } from "node:net";
import { type SignatureAlgorithm } from "./algorithms.js";
import {
  checkValidityDate,
  children,
  content,
  decodeOid,
  DerError,
  ecdsaSignatureToDer,
  encodeOid,
  encodePositiveInteger,
  encodeTime,
  readTlv,
  sumLengths,
  timeSize,
  tlv,
  tlvSize,
  writeHeader,
  writeTime,
} from "./der.js";
import type { Signer } from "./keystore/port.js";

export { checkValidityDate, ecdsaSignatureToDer, encodeTime };

const SEQUENCE = 0x30;
const OCTET_STRING = 0x04;
const BOOLEAN_TRUE = Uint8Array.of(0x01, 0x01, 0xff);

/** A non-negative safe integer as a DER INTEGER. */
function smallInteger(value: number): Uint8Array {
  const octets: number[] = [];
  do {
    octets.unshift(value % 256);
    value = Math.floor(value / 256);
  } while (value > 0);
  return encodePositiveInteger(Uint8Array.from(octets));
}

/**
 * The serialNumber INTEGER for a hex serial (any case, even length), always
 * positive: leading zero octets dropped and a 0x00 prefixed when the top bit
 * is set, as @peculiar/x509 does. Policy (which serials we accept) is issue.ts's.
 */
export function encodeSerialNumber(serialHex: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(serialHex)) throw new DerError(`serial ${JSON.stringify(serialHex)} is not hex octets`);
  return encodePositiveInteger(Buffer.from(serialHex, "hex"));
}

// ---- Extensions -------------------------------------------------------------

/** Extension OIDs, encoded once: the SKI extension is built per certificate. */
const EXTENSION_OIDS = {
  basicConstraints: encodeOid("2.5.29.19"),
  keyUsage: encodeOid("2.5.29.15"),
  extKeyUsage: encodeOid("2.5.29.37"),
  subjectAltName: encodeOid("2.5.29.17"),
  subjectKeyIdentifier: encodeOid("2.5.29.14"),
  authorityKeyIdentifier: encodeOid("2.5.29.35"),
  cRLDistributionPoints: encodeOid("2.5.29.31"),
  authorityInfoAccess: encodeOid("1.3.6.1.5.5.7.1.1"),
};

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE (left out when false), extnValue OCTET STRING }. */
function extension(id: keyof typeof EXTENSION_OIDS, critical: boolean, value: Uint8Array): Uint8Array {
  const oid = EXTENSION_OIDS[id];
  const octets = tlv(OCTET_STRING, value);
  return critical ? tlv(SEQUENCE, oid, BOOLEAN_TRUE, octets) : tlv(SEQUENCE, oid, octets);
}

export const KEY_USAGE_BITS: Record<string, number> = {
  digitalSignature: 0,
  nonRepudiation: 1,
  contentCommitment: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
};
const CA_ONLY_KEY_USAGES = new Set(["keyCertSign", "cRLSign"]);

export const EKU_OIDS: Record<string, string> = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  codeSigning: "1.3.6.1.5.5.7.3.3",
  emailProtection: "1.3.6.1.5.5.7.3.4",
  timeStamping: "1.3.6.1.5.5.7.3.8",
  OCSPSigning: "1.3.6.1.5.5.7.3.9",
  documentSigning: "1.3.6.1.5.5.7.3.36", // RFC 9336
};

export interface SubjectAltName {
  type: "dns" | "ip";
  value: string;
}

/** basicConstraints, critical: CA:FALSE is the empty SEQUENCE (cA's DEFAULT); a CA gets cA TRUE and its pathLenConstraint if given. */
export function basicConstraintsExtension(ca?: { pathLength?: number }): Uint8Array {
  const parts: Uint8Array[] = [];
  if (ca) {
    parts.push(BOOLEAN_TRUE);
    if (ca.pathLength !== undefined) {
      if (!Number.isSafeInteger(ca.pathLength) || ca.pathLength < 0) throw new Error("pathLength must be a non-negative integer");
      parts.push(smallInteger(ca.pathLength));
    }
  }
  return extension("basicConstraints", true, tlv(SEQUENCE, ...parts));
}

/**
 * keyUsage, critical: a named-bit BIT STRING with trailing zero bits trimmed
 * (X.690 11.2.2), bit 0 = digitalSignature in the top bit of the first octet.
 * No bits at all is the empty BIT STRING 03 01 00.
 */
export function keyUsageExtension(names: readonly string[], forCa: boolean): Uint8Array {
  let flags = 0;
  for (const name of names) {
    const bit = KEY_USAGE_BITS[name];
    if (bit === undefined) throw new Error(`unknown key usage ${name}`);
    if (!forCa && CA_ONLY_KEY_USAGES.has(name)) throw new Error(`key usage ${name} is reserved for CA certificates`);
    flags |= 1 << bit;
  }
  const highest = flags === 0 ? -1 : 31 - Math.clz32(flags); // highest bit number set
  const octets = (highest + 8) >> 3;
  const bits = new Uint8Array(1 + octets);
  bits[0] = octets === 0 ? 0 : octets * 8 - (highest + 1); // unused bits in the last octet
  for (let bit = 0; bit <= highest; bit++) if (flags & (1 << bit)) bits[1 + (bit >> 3)]! |= 0x80 >> (bit & 7);
  return extension("keyUsage", true, tlv(0x03, bits));
}

/** The key usage names set in a keyUsage extension value (the named-bit BIT STRING); throws DerError when it is not one. */
export function decodeKeyUsage(value: Uint8Array): string[] {
  const top = readTlv(value, 0);
  if (top.tag !== 0x03 || top.end !== value.length) throw new DerError("keyUsage is a BIT STRING");
  const bits = content(value, top).subarray(1);
  return Object.entries(KEY_USAGE_BITS)
    .filter(([name, bit]) => name !== "contentCommitment" && bit < bits.length * 8 && bits[bit >> 3]! & (0x80 >> (bit & 7)))
    .map(([name]) => name);
}

/** The purpose OIDs of an extKeyUsage extension value (SEQUENCE OF OBJECT IDENTIFIER); throws DerError when it is not one. */
export function decodeExtendedKeyUsage(value: Uint8Array): string[] {
  const top = readTlv(value, 0);
  if (top.tag !== 0x30 || top.end !== value.length) throw new DerError("extKeyUsage is a SEQUENCE");
  return children(value, top).map((oid) => {
    if (oid.tag !== 0x06) throw new DerError("a key purpose is an OID");
    return decodeOid(content(value, oid));
  });
}

/** cA of a basicConstraints extension value (SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen INTEGER OPTIONAL }). */
export function decodeBasicConstraintsCa(value: Uint8Array): boolean {
  const top = readTlv(value, 0);
  if (top.tag !== 0x30 || top.end !== value.length) throw new DerError("basicConstraints is a SEQUENCE");
  const first = children(value, top)[0];
  return first?.tag === 0x01 && content(value, first)[0] !== 0;
}

/** extKeyUsage, not critical: a SEQUENCE of purpose OIDs in the given order. */
export function extendedKeyUsageExtension(names: readonly string[]): Uint8Array {
  const oids = names.map((name) => {
    const oid = EKU_OIDS[name] ?? (/^\d+(\.\d+)+$/.test(name) ? name : undefined);
    if (!oid) throw new Error(`unknown extended key usage ${name}`);
    return encodeOid(oid);
  });
  return extension("extKeyUsage", false, tlv(SEQUENCE, ...oids));
}

const IA5_VISIBLE = /^[\x21-\x7e]+$/;

function ipv4Octets(text: string): number[] {
  return text.split(".").map(Number);
}

/** IPv6 text, already checked by isIP(), to 16 octets: "::" expanded, a trailing dotted IPv4 part included. */
function ipv6Octets(text: string): Uint8Array {
  let groupsText = text;
  let v4: number[] = [];
  if (text.includes(".")) {
    const cut = text.lastIndexOf(":");
    v4 = ipv4Octets(text.slice(cut + 1));
    groupsText = text.slice(0, cut + 1);
    // "1:2:3:4:5:6:" loses its separator; "::" (or "a::") stays, it stands for the zero groups.
    if (!groupsText.endsWith("::")) groupsText = groupsText.slice(0, -1);
  }
  const wanted = 8 - v4.length / 2;
  const parse = (part: string): number[] => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const gap = groupsText.indexOf("::");
  let groups: number[];
  if (gap >= 0) {
    const left = parse(groupsText.slice(0, gap));
    const right = parse(groupsText.slice(gap + 2));
    groups = [...left, ...new Array<number>(wanted - left.length - right.length).fill(0), ...right];
  } else {
    groups = parse(groupsText);
  }
  if (groups.length !== wanted) throw new Error(`IP address ${JSON.stringify(text)} does not have eight groups`);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  out.set(v4, 16 - v4.length);
  return out;
}

/** subjectAltName, not critical: dNSName [2] IA5String and iPAddress [7] OCTET STRING (4 or 16 octets), in the given order. */
export function subjectAltNameExtension(names: readonly SubjectAltName[]): Uint8Array {
  const general = names.map((name) => {
    if (name.type === "dns") {
      if (!IA5_VISIBLE.test(name.value)) throw new Error(`DNS name ${JSON.stringify(name.value)} is not ASCII without spaces`);
      return tlv(0x82, Buffer.from(name.value, "latin1"));
    }
    const family = isIP(name.value);
    if (family === 4) return tlv(0x87, Uint8Array.from(ipv4Octets(name.value)));
    if (family === 6 && !name.value.includes("%")) return tlv(0x87, ipv6Octets(name.value));
    throw new Error(`IP address ${JSON.stringify(name.value)} is not an IPv4 or IPv6 address`);
  });
  return extension("subjectAltName", false, tlv(SEQUENCE, ...general));
}

/** subjectKeyIdentifier, not critical: OCTET STRING of the key identifier. */
export const subjectKeyIdentifierExtension = (keyId: Uint8Array): Uint8Array =>
  extension("subjectKeyIdentifier", false, tlv(OCTET_STRING, keyId));

/** authorityKeyIdentifier, not critical: only keyIdentifier [0] (no issuer name and serial). */
export const authorityKeyIdentifierExtension = (keyId: Uint8Array): Uint8Array =>
  extension("authorityKeyIdentifier", false, tlv(SEQUENCE, tlv(0x80, keyId)));

/** cRLDistributionPoints, not critical: one DistributionPoint whose fullName [0] is one URI [6]. */
export function crlDistributionPointsExtension(url: string): Uint8Array {
  if (!IA5_VISIBLE.test(url)) throw new Error(`CRL URL ${JSON.stringify(url)} is not ASCII without spaces`);
  const uri = tlv(0x86, Buffer.from(url, "latin1"));
  return extension("cRLDistributionPoints", false, tlv(SEQUENCE, tlv(SEQUENCE, tlv(0xa0, tlv(0xa0, uri)))));
}

const ACCESS_METHOD_OCSP = encodeOid("1.3.6.1.5.5.7.48.1");
const ACCESS_METHOD_CA_ISSUERS = encodeOid("1.3.6.1.5.5.7.48.2");

export interface AuthorityInfoAccess {
  /** The OCSP responder's URL (id-ad-ocsp). */
  ocsp?: string;
  /** Where the issuer's certificate is served, DER (id-ad-caIssuers, RFC 5280 4.2.2.1). */
  caIssuers?: string;
}

/** authorityInfoAccess, not critical: AccessDescriptions (OCSP first, then caIssuers, as @peculiar/x509 orders them), each one URI [6]. */
export function authorityInfoAccessExtension(access: AuthorityInfoAccess): Uint8Array {
  const descriptions: Uint8Array[] = [];
  for (const [method, url] of [
    [ACCESS_METHOD_OCSP, access.ocsp],
    [ACCESS_METHOD_CA_ISSUERS, access.caIssuers],
  ] as const) {
    if (url === undefined) continue;
    if (!IA5_VISIBLE.test(url)) throw new Error(`access URL ${JSON.stringify(url)} is not ASCII without spaces`);
    descriptions.push(tlv(SEQUENCE, method, tlv(0x86, Buffer.from(url, "latin1"))));
  }
  if (descriptions.length === 0) throw new Error("authorityInfoAccess needs at least one URL");
  return extension("authorityInfoAccess", false, tlv(SEQUENCE, ...descriptions));
}

// ---- TBSCertificate and Certificate ------------------------------------------

export interface TbsFields {
  /** serialNumber INTEGER TLV (encodeSerialNumber). */
  serialNumber: Uint8Array;
  /** signature AlgorithmIdentifier TLV (the same as the Certificate's signatureAlgorithm). */
  signatureAlgorithm: Uint8Array;
  /** issuer Name TLV, as it appears as the subject of the issuer's certificate. */
  issuer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** subject Name TLV, copied as is. */
  subject: Uint8Array;
  /** SubjectPublicKeyInfo TLV, copied as is. */
  spki: Uint8Array;
  /** Complete Extension TLVs in certificate order (several may be one pre-concatenated run). */
  extensions: readonly Uint8Array[];
}

/** [0] EXPLICIT Version v3 (2): always v3, since every certificate of ours carries extensions. */
const VERSION_V3 = Uint8Array.of(0xa0, 0x03, 0x02, 0x01, 0x02);

/** TBSCertificate ::= SEQUENCE { version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, [3] extensions }. */
export function encodeTbsCertificate(f: TbsFields): Uint8Array<ArrayBuffer> {
  const extensionsLength = sumLengths(f.extensions);
  const extensionsSequence = tlvSize(extensionsLength);
  const validityLength = timeSize(f.notBefore) + timeSize(f.notAfter);
  const bodyLength =
    VERSION_V3.length +
    f.serialNumber.length +
    f.signatureAlgorithm.length +
    f.issuer.length +
    tlvSize(validityLength) +
    f.subject.length +
    f.spki.length +
    (f.extensions.length > 0 ? tlvSize(extensionsSequence) : 0);
  const out = new Uint8Array(tlvSize(bodyLength));
  let pos = writeHeader(out, 0, SEQUENCE, bodyLength);
  const put = (bytes: Uint8Array) => {
    out.set(bytes, pos);
    pos += bytes.length;
  };
  put(VERSION_V3);
  put(f.serialNumber);
  put(f.signatureAlgorithm);
  put(f.issuer);
  pos = writeHeader(out, pos, SEQUENCE, validityLength);
  pos = writeTime(out, pos, f.notBefore);
  pos = writeTime(out, pos, f.notAfter);
  put(f.subject);
  put(f.spki);
  if (f.extensions.length > 0) {
    pos = writeHeader(out, pos, 0xa3, extensionsSequence);
    pos = writeHeader(out, pos, SEQUENCE, extensionsLength);
    for (const e of f.extensions) put(e);
  }
  if (pos !== out.length) throw new Error("TBSCertificate length mismatch"); // an encoder bug, never an input error
  return out;
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING (0 unused bits) }. */
export function encodeCertificate(tbs: Uint8Array, signatureAlgorithm: Uint8Array, signatureValue: Uint8Array): Uint8Array<ArrayBuffer> {
  const bitStringLength = 1 + signatureValue.length;
  const bodyLength = tbs.length + signatureAlgorithm.length + tlvSize(bitStringLength);
  const out = new Uint8Array(tlvSize(bodyLength));
  let pos = writeHeader(out, 0, SEQUENCE, bodyLength);
  out.set(tbs, pos);
  pos += tbs.length;
  out.set(signatureAlgorithm, pos);
  pos += signatureAlgorithm.length;
  pos = writeHeader(out, pos, 0x03, bitStringLength);
  out[pos++] = 0;
  out.set(signatureValue, pos);
  return out;
}

// ---- Signing ----------------------------------------------------------------

/** A private key of a key store, and how certificates it signs name its algorithm. */
export interface SigningKey {
  algorithm: SignatureAlgorithm;
  privateKey: CryptoKey;
  /** The key store holding privateKey (for PKCS#11 it queues on the session pool). */
  signer: Signer;
}

/**
 * Signs a TBSCertificate (or anything shaped as one: a TBSCertList, an OCSP
 * ResponseData) and returns { tbs, signatureAlgorithm, signatureValue } DER.
 */
export async function signCertificate(tbs: Uint8Array<ArrayBuffer>, key: SigningKey): Promise<Uint8Array> {
  const raw = await key.signer.sign(key.privateKey, key.algorithm.params, tbs);
  const value = key.algorithm.ecdsaSize > 0 ? ecdsaSignatureToDer(raw, key.algorithm.ecdsaSize) : raw;
  return encodeCertificate(tbs, key.algorithm.der, value);
}
