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

function lengthBytes(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = concat(parts);
  return concat([Uint8Array.of(tag), lengthBytes(body.length), body]);
}

export const sequence = (...parts: Uint8Array[]): Uint8Array => tlv(0x30, ...parts);

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

/** DER INTEGER from a non-negative bigint (minimal, with a leading 0x00 when the top bit is set). */
export function encodeUnsignedInteger(value: bigint): Uint8Array {
  if (value < 0n) throw new DerError("negative integer");
  let hex = value.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  let bytes = Buffer.from(hex, "hex");
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.of(0), bytes]);
  return tlv(0x02, new Uint8Array(bytes));
}

export const encodeOctetString = (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes);
export const encodeNull = (): Uint8Array => Uint8Array.of(0x05, 0x00);

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
