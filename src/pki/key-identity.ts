/**
 * A public key's identity is the key, not the bytes a request happens to
 * carry it in. Every SPKI is reduced to one canonical DER form, and the
 * fingerprint (publicKeyFingerprint, the block list, KEY_REUSE) is the
 * SHA-256 of that form:
 *
 * - EC on a named curve: the uncompressed point (04 || x || y). Compressed
 *   (02/03) and hybrid (06/07) points are legal SEC 1 encodings of the same
 *   point: they are decompressed and validated (coordinates below p, the
 *   hybrid parity bit consistent, the point on the curve), never refused.
 * - RSA: rsaEncryption with NULL parameters, minimal positive INTEGERs. An
 *   AlgorithmIdentifier without its NULL is canonicalized (RFC 3279 wants
 *   NULL; absent parameters are a common encoder variant of the same key).
 *   INTEGERs that are not DER (a superfluous leading 00, a negative value
 *   where the sign octet was dropped) are refused in strict mode: they are
 *   not valid encodings, and a request carrying them is not accepted.
 *   An RSASSA-PSS key keeps its own SPKI, but its identity is the RSA key
 *   (n, e): the same modulus under another algorithm is the same key.
 * - Anything else (Ed25519, unknown curves, explicit curve parameters):
 *   the bytes as sent; profiles refuse those keys anyway.
 *
 * Lenient mode (stored data, the KMS's own keys) reads a non-minimal or
 * sign-less INTEGER as the magnitude it was meant to be, so that a key
 * accepted before this rule still gets its true identity.
 */
import { ECDH } from "node:crypto";
import { children, content, decodeOid, DerError, encodeNull, encodeOid, encodeUnsignedInteger, readTlv, sequence, tlv } from "./der.js";
import { OID_EC_PUBLIC_KEY, OID_RSA_ENCRYPTION, OID_RSASSA_PSS, readSpki, sha256Hex } from "./spki.js";

/** The key is not a valid DER encoding; the message says what is wrong, in words an officer can act on. */
export class KeyEncodingError extends Error {
  override readonly name = "KeyEncodingError";
}

export interface CanonicalKey {
  /** The SPKI to put into a certificate: the canonical DER. */
  spki: Uint8Array;
  /** SHA-256 (lowercase hex) of the canonical SPKI of the key: its identity. */
  fingerprint: string;
  /** What was re-encoded on the way, e.g. "compressed EC point"; empty when the input was canonical. */
  canonicalized: string[];
}

interface Curve {
  /** The name node:crypto's ECDH knows it by. */
  node: string;
  /** Field prime: coordinates are integers below it, in ceil(bits/8) octets. */
  p: bigint;
  /** y^2 = x^3 + ax + b: checked here for uncompressed points (OpenSSL's check costs as much as the rest of the CSR checks). */
  a?: bigint;
  b?: bigint;
}

const P256 = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
const P384 = 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n;
const P521 = 2n ** 521n - 1n;
const CURVES: Record<string, Curve> = {
  "1.2.840.10045.3.1.7": { node: "prime256v1", p: P256, a: P256 - 3n, b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn },
  "1.3.132.0.34": {
    node: "secp384r1",
    p: P384,
    a: P384 - 3n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
  },
  "1.3.132.0.35": {
    node: "secp521r1",
    p: P521,
    a: P521 - 3n,
    b: 0x051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
  },
  "1.3.132.0.10": { node: "secp256k1", p: 2n ** 256n - 2n ** 32n - 977n, a: 0n, b: 7n },
  "1.2.840.10045.3.1.1": { node: "prime192v1", p: 2n ** 192n - 2n ** 64n - 1n },
  "1.3.132.0.33": { node: "secp224r1", p: 2n ** 224n - 2n ** 96n + 1n },
};

const unsigned = (bytes: Uint8Array): bigint => (bytes.length === 0 ? 0n : BigInt("0x" + Buffer.from(bytes).toString("hex")));

/**
 * The value of a DER INTEGER that must be positive. Strict: refuses what DER
 * forbids (redundant leading octets) and negative values; lenient: reads the
 * octets as an unsigned magnitude.
 */
function positiveInteger(bytes: Uint8Array, what: string, strict: boolean): bigint {
  if (bytes.length === 0) throw new KeyEncodingError(`the ${what} INTEGER is empty`);
  if (strict) {
    if (bytes.length > 1 && bytes[0] === 0x00 && bytes[1]! < 0x80) {
      throw new KeyEncodingError(`the ${what} INTEGER has a superfluous leading 00 octet (DER requires the minimal encoding)`);
    }
    if (bytes.length > 1 && bytes[0] === 0xff && bytes[1]! >= 0x80) {
      throw new KeyEncodingError(`the ${what} INTEGER has a superfluous leading FF octet (DER requires the minimal encoding)`);
    }
    if (bytes[0]! & 0x80) {
      throw new KeyEncodingError(`the ${what} is a negative INTEGER (the 00 sign octet before its high bit is missing)`);
    }
  }
  const value = unsigned(bytes);
  if (value === 0n) throw new KeyEncodingError(`the ${what} is zero`);
  return value;
}

function rsaSpki(modulus: bigint, exponent: bigint, algorithm: Uint8Array): Uint8Array {
  const key = sequence(encodeUnsignedInteger(modulus), encodeUnsignedInteger(exponent));
  return sequence(algorithm, tlv(0x03, Uint8Array.of(0), key));
}

function canonicalRsa(oid: string, parameters: Uint8Array | undefined, publicKey: Uint8Array, strict: boolean, notes: string[]) {
  let modulusBytes: Uint8Array;
  let exponentBytes: Uint8Array;
  try {
    const top = readTlv(publicKey, 0);
    if (top.tag !== 0x30 || top.end !== publicKey.length) throw new DerError("not one SEQUENCE");
    const parts = children(publicKey, top);
    if (parts.length !== 2 || parts[0]!.tag !== 0x02 || parts[1]!.tag !== 0x02) throw new DerError("not two INTEGERs");
    modulusBytes = content(publicKey, parts[0]!);
    exponentBytes = content(publicKey, parts[1]!);
  } catch (e) {
    if (e instanceof DerError) throw new KeyEncodingError("the RSAPublicKey is not a DER SEQUENCE of modulus and exponent");
    throw e;
  }
  const modulus = positiveInteger(modulusBytes, "RSA modulus", strict);
  const exponent = positiveInteger(exponentBytes, "RSA public exponent", strict);
  const identity = rsaSpki(modulus, exponent, sequence(encodeOid(OID_RSA_ENCRYPTION), encodeNull()));
  if (oid === OID_RSASSA_PSS) {
    // The PSS parameters restrict how the key may be used; they are kept, but do not change whose key it is.
    const algorithm = sequence(encodeOid(OID_RSASSA_PSS), ...(parameters ? [parameters] : []));
    return { spki: rsaSpki(modulus, exponent, algorithm), identity };
  }
  if (!parameters) notes.push("RSA AlgorithmIdentifier without NULL parameters");
  else if (parameters.length !== 2 || parameters[0] !== 0x05 || parameters[1] !== 0x00) {
    throw new KeyEncodingError("the rsaEncryption AlgorithmIdentifier has parameters other than NULL");
  }
  return { spki: identity, identity };
}

/** Octets per coordinate: ceil(bits of p / 8). */
const FIELD_BYTES = new Map(Object.values(CURVES).map((curve) => [curve, Math.ceil(curve.p.toString(2).length / 8)]));

function canonicalEc(curveOid: string, curve: Curve, point: Uint8Array, notes: string[]): Uint8Array {
  const n = FIELD_BYTES.get(curve)!;
  const form = point[0];
  const expected = form === 0x02 || form === 0x03 ? 1 + n : form === 0x04 || form === 0x06 || form === 0x07 ? 1 + 2 * n : undefined;
  if (form === 0x00) throw new KeyEncodingError("the EC public key is the point at infinity");
  if (expected === undefined) throw new KeyEncodingError(`the EC point has an unknown form octet ${form === undefined ? "(empty)" : form.toString(16).padStart(2, "0")}`);
  if (point.length !== expected) {
    throw new KeyEncodingError(`the EC point is ${point.length} octets long; a ${form === 0x02 || form === 0x03 ? "compressed" : "full"} point on this curve is ${expected}`);
  }
  const x = unsigned(point.subarray(1, 1 + n));
  if (x >= curve.p) throw new KeyEncodingError("the EC point's x coordinate is not below the field prime");
  if (form !== 0x02 && form !== 0x03) {
    const y = unsigned(point.subarray(1 + n));
    if (y >= curve.p) throw new KeyEncodingError("the EC point's y coordinate is not below the field prime");
    if (form !== 0x04 && Number(y & 1n) !== (form & 1)) {
      throw new KeyEncodingError("the hybrid EC point's form octet does not match the parity of its y coordinate");
    }
  }
  if (form === 0x04 && curve.a !== undefined && curve.b !== undefined) {
    const y = unsigned(point.subarray(1 + n));
    if ((y * y - (x * x * x + curve.a * x + curve.b)) % curve.p !== 0n) throw new KeyEncodingError("the EC point is not on its curve");
    return sequence(sequence(encodeOid(OID_EC_PUBLIC_KEY), encodeOid(curveOid)), tlv(0x03, Uint8Array.of(0), point));
  }
  if (form === 0x02 || form === 0x03) notes.push("compressed EC point");
  if (form === 0x06 || form === 0x07) notes.push("hybrid EC point");
  let uncompressed: Buffer;
  try {
    // OpenSSL decompresses and checks that the point lies on the curve (for every form).
    uncompressed = ECDH.convertKey(Buffer.from(point), curve.node, undefined, undefined, "uncompressed") as Buffer;
  } catch {
    throw new KeyEncodingError("the EC point is not on its curve");
  }
  return sequence(sequence(encodeOid(OID_EC_PUBLIC_KEY), encodeOid(curveOid)), tlv(0x03, Uint8Array.of(0), uncompressed));
}

/**
 * The canonical form of a SubjectPublicKeyInfo. Throws KeyEncodingError when
 * the key cannot be read, or (strict) is not DER. The SPKI's own framing
 * (lengths, tags, unused bits) must already be DER: readSpki refuses the rest.
 */
export function canonicalKey(spki: Uint8Array, opts: { strict: boolean } = { strict: true }): CanonicalKey {
  let parts: ReturnType<typeof readSpki>;
  try {
    parts = readSpki(spki);
  } catch (e) {
    if (e instanceof DerError) throw new KeyEncodingError(`the SubjectPublicKeyInfo is not DER (${e.message})`);
    throw e;
  }
  const notes: string[] = [];
  if (parts.algorithm === OID_RSA_ENCRYPTION || parts.algorithm === OID_RSASSA_PSS) {
    const { spki: canonical, identity } = canonicalRsa(parts.algorithm, parts.parameters, parts.subjectPublicKey, opts.strict, notes);
    return { spki: canonical, fingerprint: sha256Hex(identity), canonicalized: notes };
  }
  if (parts.algorithm === OID_EC_PUBLIC_KEY && parts.parameters) {
    let curveOid: string | undefined;
    try {
      const params = readTlv(parts.parameters, 0);
      if (params.tag === 0x06) curveOid = decodeOid(content(parts.parameters, params));
    } catch {
      curveOid = undefined;
    }
    const curve = curveOid ? CURVES[curveOid] : undefined;
    if (curveOid && curve) {
      const canonical = canonicalEc(curveOid, curve, parts.subjectPublicKey, notes);
      return { spki: canonical, fingerprint: sha256Hex(canonical), canonicalized: notes };
    }
  }
  const copy = new Uint8Array(spki);
  return { spki: copy, fingerprint: sha256Hex(copy), canonicalized: [] };
}

/** The identity of a key already in a certificate or other stored material: lenient, and never throws (a key it cannot read keeps the hash of its bytes). */
export function spkiFingerprint(spki: Uint8Array): string {
  try {
    return canonicalKey(spki, { strict: false }).fingerprint;
  } catch {
    return sha256Hex(spki);
  }
}

/** The SubjectPublicKeyInfo DER inside a certificate's DER (a view into it). Throws DerError when the certificate is malformed. */
export function certificateSpki(certificate: Uint8Array): Uint8Array {
  const outer = readTlv(certificate, 0);
  const [tbs] = children(certificate, outer);
  if (outer.tag !== 0x30 || !tbs || tbs.tag !== 0x30) throw new DerError("not a certificate");
  const fields = children(certificate, tbs);
  // version [0] EXPLICIT is absent in v1 certificates; then serial, signature, issuer, validity, subject, subjectPublicKeyInfo.
  const spki = fields[fields[0]?.tag === 0xa0 ? 6 : 5];
  if (!spki || spki.tag !== 0x30) throw new DerError("no subjectPublicKeyInfo");
  return certificate.subarray(spki.start, spki.end);
}

/** The SubjectPublicKeyInfo DER inside a PKCS#10 request's DER (a view into it). Throws DerError when the request is malformed. */
export function requestSpki(request: Uint8Array): Uint8Array {
  const outer = readTlv(request, 0);
  const [info] = children(request, outer);
  if (outer.tag !== 0x30 || !info || info.tag !== 0x30) throw new DerError("not a certification request");
  const spki = children(request, info)[2];
  if (!spki || spki.tag !== 0x30) throw new DerError("no subjectPublicKeyInfo");
  return request.subarray(spki.start, spki.end);
}
