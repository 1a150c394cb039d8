/**
 * A minimal strict DER reader and writer.
 *
 * The ASN.1 schema library decodes into objects and re-encodes on demand; for
 * the few places where the exact bytes matter (the subject Name copied
 * verbatim into a certificate, the signed part of a CSR, trailing data after
 * the outer SEQUENCE) we walk the TLVs ourselves and keep slices of the input.
 */

export interface Tlv {
  /** The identifier octet (only low-tag-number form is accepted: all X.509 tags fit). */
  tag: number;
  /** Offset of the identifier octet in the buffer. */
  start: number;
  /** Offset of the first content octet. */
  contentStart: number;
  /** Offset just past the last content octet. */
  end: number;
}

export class DerError extends Error {
  override readonly name = "DerError";
}

/** Reads one TLV at `offset`, refusing indefinite or non-minimal lengths (DER, not BER). */
export function readTlv(buf: Uint8Array, offset: number, limit = buf.length): Tlv {
  if (offset + 2 > limit) throw new DerError("truncated TLV header");
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError("high-tag-number form is not used in X.509");
  let pos = offset + 1;
  const first = buf[pos++]!;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    if (count === 0) throw new DerError("indefinite length is not DER");
    if (count > 4) throw new DerError("length too large");
    if (pos + count > limit) throw new DerError("truncated length");
    if (buf[pos] === 0) throw new DerError("non-minimal length encoding");
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + buf[pos++]!;
    if (length < 0x80) throw new DerError("non-minimal length encoding");
  }
  const end = pos + length;
  if (end > limit) throw new DerError("content runs past the end of its container");
  return { tag, start: offset, contentStart: pos, end };
}

/** The TLVs directly inside a constructed TLV, in order. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  if ((parent.tag & 0x20) === 0) throw new DerError("not a constructed type");
  const out: Tlv[] = [];
  let pos = parent.contentStart;
  while (pos < parent.end) {
    const child = readTlv(buf, pos, parent.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

export const raw = (buf: Uint8Array, tlv: Tlv): Uint8Array => buf.subarray(tlv.start, tlv.end);
export const content = (buf: Uint8Array, tlv: Tlv): Uint8Array => buf.subarray(tlv.contentStart, tlv.end);

/** Decodes an OBJECT IDENTIFIER's content octets to dotted form. */
export function decodeOid(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new DerError("empty OID");
  const arcs: bigint[] = [];
  let value = 0n;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (value === 0n && b === 0x80) throw new DerError("non-minimal OID arc");
    value = (value << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0n;
    } else if (i === bytes.length - 1) {
      throw new DerError("truncated OID");
    }
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].map(String).join(".");
}

// ---- writer -----------------------------------------------------------------
//
// The one DER writer: certificates (tbs.ts), CRLs (crl.ts), OCSP (ocsp.ts) and
// CMS (cms.ts) all build their TLVs here. Every TLV is one allocation.

/** Octets taken by a DER length of `length`. */
function lengthSize(length: number): number {
  if (length < 0x80) return 1;
  if (length < 0x100) return 2;
  if (length < 0x10000) return 3;
  if (length < 0x1000000) return 4;
  return 5;
}

/** Octets taken by a TLV whose content is `length` octets (low tag numbers only, as in all of X.509). */
export const tlvSize = (length: number): number => 1 + lengthSize(length) + length;

/** Writes tag and length at `pos`; returns the position of the first content octet. */
export function writeHeader(out: Uint8Array, pos: number, tag: number, length: number): number {
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

export function sumLengths(parts: readonly Uint8Array[]): number {
  let total = 0;
  for (const p of parts) total += p.length;
  return total;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(sumLengths(parts));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

/** One TLV around the concatenation of `parts`, in a single allocation. */
export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const length = sumLengths(parts);
  const out = new Uint8Array(tlvSize(length));
  let pos = writeHeader(out, 0, tag, length);
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export const sequence = (...parts: Uint8Array[]): Uint8Array<ArrayBuffer> => tlv(0x30, ...parts);

export function encodeOid(oid: string): Uint8Array {
  const arcs = oid.split(".").map((s) => BigInt(s));
  if (arcs.length < 2) throw new DerError(`bad OID ${oid}`);
  const values = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const v of values) {
    const chunk: number[] = [Number(v & 0x7fn)];
    for (let n = v >> 7n; n > 0n; n >>= 7n) chunk.unshift(Number(n & 0x7fn) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Uint8Array.from(out));
}

/** A non-negative INTEGER from big-endian magnitude octets: leading zeros dropped, 0x00 prefixed when the top bit is set. */
export function encodePositiveInteger(magnitude: Uint8Array): Uint8Array {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const body = magnitude.length === 0 ? Uint8Array.of(0) : magnitude.subarray(start);
  const pad = body[0]! & 0x80 ? 1 : 0;
  const out = new Uint8Array(tlvSize(body.length + pad));
  const pos = writeHeader(out, 0, 0x02, body.length + pad);
  out.set(body, pos + pad);
  return out;
}

/** DER INTEGER from a non-negative bigint (minimal, with a leading 0x00 when the top bit is set). */
export function encodeUnsignedInteger(value: bigint): Uint8Array {
  if (value < 0n) throw new DerError("negative integer");
  let hex = value.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  return encodePositiveInteger(Buffer.from(hex, "hex"));
}

export const encodeOctetString = (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes);
export const encodeNull = (): Uint8Array => Uint8Array.of(0x05, 0x00);

// ---- time ---------------------------------------------------------------------

/** UTCTime for 1950-2049 (RFC 5280 4.1.2.5), GeneralizedTime otherwise. */
const isUtcTimeYear = (year: number): boolean => year >= 1950 && year < 2050;

/** The Time TLV's size: UTCTime is 13 octets of content (YYMMDDHHMMSSZ), GeneralizedTime 15 (YYYYMMDDHHMMSSZ). */
export const timeSize = (date: Date): number => (isUtcTimeYear(date.getUTCFullYear()) ? 15 : 17);

function writeDigits(out: Uint8Array, pos: number, value: number, digits: number): number {
  for (let i = digits - 1; i >= 0; i--) {
    out[pos + i] = 0x30 + (value % 10);
    value = Math.floor(value / 10);
  }
  return pos + digits;
}

/**
 * Writes a Time at `pos` (UTCTime 1950-2049, GeneralizedTime otherwise, or
 * always GeneralizedTime with `generalized`), in whole seconds and Zulu.
 * Milliseconds are dropped (truncated). Returns the position after it.
 */
export function writeTime(out: Uint8Array, pos: number, date: Date, generalized = false): number {
  const year = date.getUTCFullYear();
  const general = generalized || !isUtcTimeYear(year);
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

/** One Time TLV as X.509 Validity, CRLs (RFC 5280 5.1.2.4) and CMS signingTime use it. */
export function encodeTime(date: Date): Uint8Array {
  const out = new Uint8Array(timeSize(date));
  writeTime(out, 0, date);
  return out;
}

/** One GeneralizedTime TLV (YYYYMMDDHHMMSSZ, whole seconds), as OCSP requires (RFC 6960 4.2.1). */
export function encodeGeneralizedTime(date: Date): Uint8Array {
  const out = new Uint8Array(17);
  writeTime(out, 0, date, true);
  return out;
}

/** Refuses dates a Time cannot carry unambiguously (UTCTime's 1950-2049 window, GeneralizedTime's four digits). */
export function checkValidityDate(date: Date, field: string): void {
  const year = date.getUTCFullYear();
  if (!Number.isFinite(date.getTime()) || year < 1950 || year > 9999) {
    throw new Error(`${field} ${Number.isFinite(date.getTime()) ? date.toISOString() : "Invalid Date"} is outside 1950-9999`);
  }
}

// ---- signatures and certificates ------------------------------------------------

/**
 * WebCrypto's ECDSA signature is r||s, each `size` octets (IEEE P1363); X.509
 * and CMS want Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 5480).
 */
export function ecdsaSignatureToDer(signature: Uint8Array, size: number): Uint8Array {
  if (signature.length !== 2 * size) throw new Error(`ECDSA signature is ${signature.length} octets, expected ${2 * size}`);
  return sequence(encodePositiveInteger(signature.subarray(0, size)), encodePositiveInteger(signature.subarray(size)));
}

export interface CertificateFields {
  /** serialNumber INTEGER TLV. */
  serial: Uint8Array;
  /** issuer Name TLV. */
  issuer: Uint8Array;
  /** subject Name TLV. */
  subject: Uint8Array;
  /** SubjectPublicKeyInfo TLV. */
  spki: Uint8Array;
}

/** The one certificate walker: serial, issuer, subject and SPKI TLVs of a Certificate's DER, as slices of it. */
export function certificateFields(der: Uint8Array): CertificateFields {
  const certificate = readTlv(der, 0);
  const tbs = children(der, certificate)[0];
  if (!tbs || tbs.tag !== 0x30) throw new DerError("a Certificate starts with its TBSCertificate");
  const fields = children(der, tbs);
  const at = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] version, absent in v1
  const [serial, , issuer, , subject, spki] = fields.slice(at);
  if (serial?.tag !== 0x02) throw new DerError("TBSCertificate has no serialNumber");
  if (issuer?.tag !== 0x30) throw new DerError("TBSCertificate has no issuer Name");
  if (subject?.tag !== 0x30) throw new DerError("TBSCertificate has no subject Name");
  if (spki?.tag !== 0x30) throw new DerError("TBSCertificate has no subjectPublicKeyInfo");
  return { serial: raw(der, serial), issuer: raw(der, issuer), subject: raw(der, subject), spki: raw(der, spki) };
}

/**
 * The same bytes typed as WebCrypto's BufferSource (a view on an ArrayBuffer,
 * not a SharedArrayBuffer). Copies only when the view sits on something else.
 */
export const asBufferSource = (bytes: Uint8Array): Uint8Array<ArrayBuffer> =>
  bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);

// ---- strict DER ---------------------------------------------------------------

const TIME_FORMATS: Record<number, RegExp> = {
  0x17: /^\d{12}Z$/, // UTCTime YYMMDDHHMMSSZ (RFC 5280 4.1.2.5.1)
  0x18: /^\d{14}Z$/, // GeneralizedTime YYYYMMDDHHMMSSZ, no fraction (4.1.2.5.2)
};

/** Checks one primitive value against X.690's DER rules for its universal type. */
function checkPrimitive(tag: number, value: Uint8Array): void {
  switch (tag) {
    case 0x01: // BOOLEAN: one octet, FF for TRUE (11.1)
      if (value.length !== 1 || (value[0] !== 0x00 && value[0] !== 0xff)) throw new DerError("BOOLEAN is not 00 or FF");
      return;
    case 0x02: // INTEGER: minimal two's complement (8.3.2)
    case 0x0a: // ENUMERATED: the same
      if (value.length === 0) throw new DerError("empty INTEGER");
      if (value.length > 1 && ((value[0] === 0x00 && !(value[1]! & 0x80)) || (value[0] === 0xff && value[1]! & 0x80))) {
        throw new DerError("INTEGER is not minimally encoded");
      }
      return;
    case 0x03: {
      // BIT STRING: unused-bits octet 0-7, 0 when empty, and the unused bits zero (11.2.1)
      const unused = value[0];
      if (unused === undefined || unused > 7 || (value.length === 1 && unused !== 0)) throw new DerError("bad BIT STRING unused-bits octet");
      if (unused > 0 && value[value.length - 1]! & ((1 << unused) - 1)) throw new DerError("BIT STRING padding bits are not zero");
      return;
    }
    case 0x05: // NULL
      if (value.length !== 0) throw new DerError("NULL has content");
      return;
    case 0x06:
      decodeOid(value);
      if (value[0] === 0x80) throw new DerError("non-minimal OID arc");
      for (let i = 1; i < value.length; i++) if (value[i] === 0x80 && !(value[i - 1]! & 0x80)) throw new DerError("non-minimal OID arc");
      return;
    case 0x17:
    case 0x18:
      if (!TIME_FORMATS[tag]!.test(Buffer.from(value).toString("latin1"))) throw new DerError("time is not in its DER form");
      return;
    default:
      return;
  }
}

/**
 * Walks `der` as a tree (constructed types recursively; OCTET and BIT
 * STRINGs that hold DER are not guessed at, lint.ts walks extension values
 * itself) and checks every value against the DER rules. A tree that passes
 * re-encodes to exactly its input: lengths are minimal (readTlv), children
 * tile their parent, and values are in their one DER form, so the check
 * needs no second copy. Catches what a lenient reader lets through:
 * non-minimal lengths and integers, BOOLEANs other than FF, unsorted SET OF,
 * non-zero padding bits. (An empty SEQUENCE where a field should be absent
 * is valid DER: lint.ts catches that.)
 */
export function checkStrictDer(der: Uint8Array): void {
  const walk = (start: number, limit: number, sorted: boolean): void => {
    let pos = start;
    let previous: Uint8Array | undefined;
    while (pos < limit) {
      const node = readTlv(der, pos, limit);
      if (node.tag & 0x20) walk(node.contentStart, node.end, node.tag === 0x31);
      else if ((node.tag & 0xc0) === 0) checkPrimitive(node.tag, der.subarray(node.contentStart, node.end));
      if (sorted) {
        // SET OF: DER sorts the encodings (11.6).
        const encoding = der.subarray(node.start, node.end);
        if (previous && Buffer.compare(previous, encoding) > 0) throw new DerError("SET elements are not in DER order");
        previous = encoding;
      }
      pos = node.end;
    }
  };
  const top = readTlv(der, 0);
  if (top.end !== der.length) throw new DerError("not exactly one DER value");
  walk(0, der.length, false);
}
