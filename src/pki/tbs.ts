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
 * Pure functions except signCertificate, which calls the issuer's WebCrypto
 * (for PKCS#11 that is the key store's session pool).
 */
import { isIP } from "node:net";
import { children, content, decodeOid, DerError, encodeOid, readTlv } from "./der.js";

// ---- DER primitives ---------------------------------------------------------

/** Octets taken by a DER length of `length`. */
function lengthSize(length: number): number {
  if (length < 0x80) return 1;
  if (length < 0x100) return 2;
  if (length < 0x10000) return 3;
  if (length < 0x1000000) return 4;
  return 5;
}

/** Octets taken by a TLV whose content is `length` octets (low tag numbers only, as in all of X.509). */
const tlvSize = (length: number): number => 1 + lengthSize(length) + length;

/** Writes tag and length at `pos`; returns the position of the first content octet. */
function writeHeader(out: Uint8Array, pos: number, tag: number, length: number): number {
  out[pos++] = tag;
  if (length < 0x80) {
    out[pos++] = length;
    return pos;
  }
  const size = lengthSize(length) - 1;
  out[pos++] = 0x80 | size;
  for (let i = size - 1; i >= 0; i--) out[pos++] = (length / 2 ** (8 * i)) & 0xff;
  return pos;
}

function sumLengths(parts: readonly Uint8Array[]): number {
  let total = 0;
  for (const p of parts) total += p.length;
  return total;
}

/** One TLV around the concatenation of `parts`, in a single allocation. */
function wrap(tag: number, parts: readonly Uint8Array[]): Uint8Array {
  const length = sumLengths(parts);
  const out = new Uint8Array(tlvSize(length));
  let pos = writeHeader(out, 0, tag, length);
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

const SEQUENCE = 0x30;
const OCTET_STRING = 0x04;
const BOOLEAN_TRUE = Uint8Array.of(0x01, 0x01, 0xff);

/** A non-negative INTEGER from big-endian magnitude octets: leading zeros dropped, 0x00 prefixed when the top bit is set. */
function positiveInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const body = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(start);
  const pad = body[0]! & 0x80 ? 1 : 0;
  const out = new Uint8Array(tlvSize(body.length + pad));
  const pos = writeHeader(out, 0, 0x02, body.length + pad);
  out.set(body, pos + pad);
  return out;
}

/** A non-negative safe integer as a DER INTEGER. */
function smallInteger(value: number): Uint8Array {
  const octets: number[] = [];
  do {
    octets.unshift(value % 256);
    value = Math.floor(value / 256);
  } while (value > 0);
  return positiveInteger(Uint8Array.from(octets));
}

/**
 * The serialNumber INTEGER for a hex serial (any case, even length), always
 * positive: leading zero octets dropped and a 0x00 prefixed when the top bit
 * is set, as @peculiar/x509 does. Policy (which serials we accept) is issue.ts's.
 */
export function encodeSerialNumber(serialHex: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(serialHex)) throw new DerError(`serial ${JSON.stringify(serialHex)} is not hex octets`);
  return positiveInteger(Buffer.from(serialHex, "hex"));
}

// ---- Time -------------------------------------------------------------------

/** UTCTime is 13 octets of content (YYMMDDHHMMSSZ), GeneralizedTime 15 (YYYYMMDDHHMMSSZ). */
const timeSize = (date: Date): number => (date.getUTCFullYear() >= 2050 ? 17 : 15);

function writeDigits(out: Uint8Array, pos: number, value: number, digits: number): number {
  for (let i = digits - 1; i >= 0; i--) {
    out[pos + i] = 0x30 + (value % 10);
    value = Math.floor(value / 10);
  }
  return pos + digits;
}

/**
 * RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, both in
 * whole seconds and Zulu. Milliseconds are dropped (truncated), as the library
 * did. Years before 1950 have no UTCTime and are refused by checkValidityDate.
 */
function writeTime(out: Uint8Array, pos: number, date: Date): number {
  const year = date.getUTCFullYear();
  const general = year >= 2050;
  pos = writeHeader(out, pos, general ? 0x18 : 0x17, general ? 15 : 13);
  pos = general ? writeDigits(out, pos, year, 4) : writeDigits(out, pos, year % 100, 2);
  pos = writeDigits(out, pos, date.getUTCMonth() + 1, 2);
  pos = writeDigits(out, pos, date.getUTCDate(), 2);
  pos = writeDigits(out, pos, date.getUTCHours(), 2);
  pos = writeDigits(out, pos, date.getUTCMinutes(), 2);
  pos = writeDigits(out, pos, date.getUTCSeconds(), 2);
  out[pos++] = 0x5a; // "Z"
  return pos;
}

/** One Time TLV (UTCTime through 2049, GeneralizedTime from 2050), as in Validity; CRLs use the same rule (RFC 5280 5.1.2.4). */
export function encodeTime(date: Date): Uint8Array {
  const out = new Uint8Array(timeSize(date));
  writeTime(out, 0, date);
  return out;
}

/** Refuses dates the Validity field cannot carry unambiguously (UTCTime's 1950-2049 window, GeneralizedTime's four digits). */
export function checkValidityDate(date: Date, field: string): void {
  const year = date.getUTCFullYear();
  if (!Number.isFinite(date.getTime()) || year < 1950 || year > 9999) {
    throw new Error(`${field} ${Number.isFinite(date.getTime()) ? date.toISOString() : "Invalid Date"} is outside 1950-9999`);
  }
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
  const octets = wrap(OCTET_STRING, [value]);
  return wrap(SEQUENCE, critical ? [oid, BOOLEAN_TRUE, octets] : [oid, octets]);
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
  return extension("basicConstraints", true, wrap(SEQUENCE, parts));
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
  return extension("keyUsage", true, wrap(0x03, [bits]));
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
  return extension("extKeyUsage", false, wrap(SEQUENCE, oids));
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
      return wrap(0x82, [Buffer.from(name.value, "latin1")]);
    }
    const family = isIP(name.value);
    if (family === 4) return wrap(0x87, [Uint8Array.from(ipv4Octets(name.value))]);
    if (family === 6 && !name.value.includes("%")) return wrap(0x87, [ipv6Octets(name.value)]);
    throw new Error(`IP address ${JSON.stringify(name.value)} is not an IPv4 or IPv6 address`);
  });
  return extension("subjectAltName", false, wrap(SEQUENCE, general));
}

/** subjectKeyIdentifier, not critical: OCTET STRING of the key identifier. */
export const subjectKeyIdentifierExtension = (keyId: Uint8Array): Uint8Array =>
  extension("subjectKeyIdentifier", false, wrap(OCTET_STRING, [keyId]));

/** authorityKeyIdentifier, not critical: only keyIdentifier [0] (no issuer name and serial). */
export const authorityKeyIdentifierExtension = (keyId: Uint8Array): Uint8Array =>
  extension("authorityKeyIdentifier", false, wrap(SEQUENCE, [wrap(0x80, [keyId])]));

/** cRLDistributionPoints, not critical: one DistributionPoint whose fullName [0] is one URI [6]. */
export function crlDistributionPointsExtension(url: string): Uint8Array {
  if (!IA5_VISIBLE.test(url)) throw new Error(`CRL URL ${JSON.stringify(url)} is not ASCII without spaces`);
  const uri = wrap(0x86, [Buffer.from(url, "latin1")]);
  return extension("cRLDistributionPoints", false, wrap(SEQUENCE, [wrap(SEQUENCE, [wrap(0xa0, [wrap(0xa0, [uri])])])]));
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
    descriptions.push(wrap(SEQUENCE, [method, wrap(0x86, [Buffer.from(url, "latin1")])]));
  }
  if (descriptions.length === 0) throw new Error("authorityInfoAccess needs at least one URL");
  return extension("authorityInfoAccess", false, wrap(SEQUENCE, descriptions));
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

// ---- Signatures -------------------------------------------------------------

/**
 * WebCrypto's ECDSA signature is r||s, each `size` octets (IEEE P1363); X.509
 * wants Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 5480).
 */
export function ecdsaSignatureToDer(signature: Uint8Array, size: number): Uint8Array {
  if (signature.length !== 2 * size) throw new Error(`ECDSA signature is ${signature.length} octets, expected ${2 * size}`);
  return wrap(SEQUENCE, [positiveInteger(signature.subarray(0, size)), positiveInteger(signature.subarray(size))]);
}

export interface SignatureAlgorithm {
  /** What to hand to crypto.subtle.sign. */
  params: EcdsaParams | Algorithm;
  /** The AlgorithmIdentifier TLV for both TBSCertificate.signature and Certificate.signatureAlgorithm. */
  der: Uint8Array;
  /** Octets per ECDSA coordinate (the signature is converted to DER); 0 for RSA (used as is). */
  ecdsaSize: number;
}

const NULL = Uint8Array.of(0x05, 0x00);
const RSA_OIDS: Record<string, string> = {
  "SHA-256": "1.2.840.113549.1.1.11",
  "SHA-384": "1.2.840.113549.1.1.12",
  "SHA-512": "1.2.840.113549.1.1.13",
};

/**
 * The signature algorithm for the issuer's key: ECDSA with the curve's hash
 * (P-256: SHA-256, P-384: SHA-384; parameters absent, RFC 5758), or RSASSA-
 * PKCS1-v1_5 with the hash WebCrypto bound to the key (parameters NULL, RFC 4055).
 * Taking the RSA hash from the key is what WebCrypto signs with whatever we ask.
 */
export function signatureAlgorithmOf(privateKey: CryptoKey): SignatureAlgorithm {
  const algorithm = privateKey.algorithm as Partial<EcKeyAlgorithm & RsaHashedKeyAlgorithm> & KeyAlgorithm;
  if (algorithm.name === "ECDSA") {
    if (algorithm.namedCurve === "P-256") return { params: { name: "ECDSA", hash: "SHA-256" }, der: wrap(SEQUENCE, [encodeOid("1.2.840.10045.4.3.2")]), ecdsaSize: 32 };
    if (algorithm.namedCurve === "P-384") return { params: { name: "ECDSA", hash: "SHA-384" }, der: wrap(SEQUENCE, [encodeOid("1.2.840.10045.4.3.3")]), ecdsaSize: 48 };
    throw new Error(`unsupported issuer curve ${algorithm.namedCurve}`);
  }
  if (algorithm.name === "RSASSA-PKCS1-v1_5") {
    const hash = algorithm.hash?.name ?? "SHA-256";
    const oid = RSA_OIDS[hash];
    if (!oid) throw new Error(`unsupported issuer hash ${hash}`);
    return { params: { name: "RSASSA-PKCS1-v1_5" }, der: wrap(SEQUENCE, [encodeOid(oid), NULL]), ecdsaSize: 0 };
  }
  throw new Error(`unsupported issuer key algorithm ${algorithm.name}`);
}

export interface Signer {
  algorithm: SignatureAlgorithm;
  privateKey: CryptoKey;
  /** The WebCrypto that owns privateKey (KeyStore.crypto; for PKCS#11 it queues on the session pool). */
  crypto: Crypto;
}

/** Signs a TBSCertificate and returns the Certificate DER. */
export async function signCertificate(tbs: Uint8Array<ArrayBuffer>, signer: Signer): Promise<Uint8Array> {
  const raw = new Uint8Array(await signer.crypto.subtle.sign(signer.algorithm.params, signer.privateKey, tbs));
  const value = signer.algorithm.ecdsaSize > 0 ? ecdsaSignatureToDer(raw, signer.algorithm.ecdsaSize) : raw;
  return encodeCertificate(tbs, signer.algorithm.der, value);
}
