/**
 * X.501 Names read straight from DER: attributes in order, and the RFC 4514
 * string form. Working on the bytes (rather than a decoded object) lets the
 * subject DER travel into the certificate untouched and keeps the string form
 * faithful to what was signed.
 */
import { children, content, decodeOid, raw, readTlv, DerError } from "./der.js";

/** RFC 4514 section 3 table: the only short names a conforming string form may use. */
const RFC4514_NAMES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.6": "C",
  "2.5.4.9": "STREET",
  "0.9.2342.19200300.100.1.25": "DC",
  "0.9.2342.19200300.100.1.1": "UID",
};

/** Friendlier names for messages only (never in the RFC 4514 form). */
const DISPLAY_NAMES: Record<string, string> = {
  ...RFC4514_NAMES,
  "1.2.840.113549.1.9.1": "emailAddress",
  "2.5.4.5": "serialNumber",
  "2.5.4.4": "SN",
  "2.5.4.42": "GN",
  "2.5.4.12": "title",
  "2.5.4.17": "postalCode",
  "2.5.4.97": "organizationIdentifier",
};

export interface NameAttribute {
  oid: string;
  /** RFC 4514 short name when there is one ("CN", "O", ...). */
  shortName: string | undefined;
  /** Name for human messages ("emailAddress" or the dotted OID). */
  displayName: string;
  /** The value's ASN.1 tag (0x13 PrintableString, 0x0c UTF8String, ...). */
  tag: number;
  /** Decoded text when the value is one of the ASN.1 string types, otherwise null. */
  text: string | null;
  /** Why the value's bytes are not a valid instance of its string type (charset, length, lone surrogate), or null. */
  problem: string | null;
  /** The whole value TLV. */
  valueDer: Uint8Array;
}

/** ASN.1 string type names by tag, for messages. */
export const STRING_TYPE_NAMES: Record<number, string> = {
  0x0c: "UTF8String",
  0x12: "NumericString",
  0x13: "PrintableString",
  0x14: "TeletexString",
  0x16: "IA5String",
  0x1a: "VisibleString",
  0x1c: "UniversalString",
  0x1e: "BMPString",
};

/** X.680 41.4: the PrintableString character set. */
export const PRINTABLE_STRING = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

interface Decoded {
  text: string;
  problem: string | null;
}

const UTF8_STRICT = new TextDecoder("utf-8", { fatal: true });
const UTF8_LENIENT = new TextDecoder("utf-8");
const latin1 = (b: Uint8Array) => Buffer.from(b).toString("latin1");
/** A character for a message, as U+XXXX: never the raw character, which could be a line break or an override. */
export const codePoint = (ch: string) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;

/** The first character of `text` outside `allowed`, as a problem sentence (the character as U+XXXX, never raw). */
function charset(text: string, allowed: RegExp, what: string): Decoded {
  const bad = [...text].find((ch) => !allowed.test(ch));
  return { text, problem: bad === undefined ? null : `holds ${codePoint(bad)}, which is not a ${what} character` };
}

/** A string of UTF-16 code units that may hold lone surrogates (from BMPString): reported, not silently replaced. */
function surrogates(text: string): Decoded {
  return { text, problem: /\p{Cs}/u.test(text) ? "holds a lone surrogate, which is not a character" : null };
}

/**
 * Strict decoders: the text plus what is wrong with the bytes for their type.
 * The text of a malformed value is still returned (for the RFC 4514 form of
 * certificates already issued); the CSR policy refuses values with a problem.
 */
const STRING_TAGS: Record<number, (b: Uint8Array) => Decoded> = {
  0x0c: (b) => {
    try {
      return { text: UTF8_STRICT.decode(b), problem: null };
    } catch {
      return { text: UTF8_LENIENT.decode(b), problem: "is not valid UTF-8" };
    }
  },
  0x13: (b) => charset(latin1(b), /[A-Za-z0-9 '()+,\-./:=?]/, "PrintableString"),
  // eslint-disable-next-line no-control-regex -- IA5String is 7-bit ASCII, controls included; the character policy refuses them later.
  0x16: (b) => charset(latin1(b), /[\x00-\x7f]/, "IA5String (7-bit)"),
  0x12: (b) => charset(latin1(b), /[0-9 ]/, "NumericString"),
  0x1a: (b) => charset(latin1(b), /[\x20-\x7e]/, "VisibleString"),
  0x14: (b) => ({ text: latin1(b), problem: null }), // TeletexString: read as Latin-1, as OpenSSL does
  0x1e: (b) => {
    // BMPString: UCS-2 big-endian
    if (b.length % 2) return { text: latin1(b), problem: "has an odd number of bytes for a BMPString" };
    return surrogates(Buffer.from(b).swap16().toString("utf16le"));
  },
  0x1c: (b) => {
    // UniversalString: UCS-4 big-endian
    if (b.length % 4) return { text: latin1(b), problem: "is not a whole number of UniversalString characters" };
    let s = "";
    for (let i = 0; i < b.length; i += 4) {
      const cp = Buffer.from(b).readUInt32BE(i);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return { text: latin1(b), problem: "holds a value that is not a Unicode character" };
      s += String.fromCodePoint(cp);
    }
    return { text: s, problem: null };
  },
};

/** The RDNs of a Name in DER order, each a list of its attributes. Throws DerError when malformed. */
export function parseName(der: Uint8Array): NameAttribute[][] {
  const top = readTlv(der, 0);
  if (top.tag !== 0x30 || top.end !== der.length) throw new DerError("a Name is one SEQUENCE");
  return children(der, top).map((rdn) => {
    if (rdn.tag !== 0x31) throw new DerError("an RDN is a SET");
    const atvs = children(der, rdn);
    if (atvs.length === 0) throw new DerError("empty RDN");
    return atvs.map((atv) => {
      if (atv.tag !== 0x30) throw new DerError("an attribute is a SEQUENCE");
      const parts = children(der, atv);
      if (parts.length !== 2 || parts[0]!.tag !== 0x06) throw new DerError("an attribute is type and value");
      const oid = decodeOid(content(der, parts[0]!));
      const value = parts[1]!;
      const decode = STRING_TAGS[value.tag];
      const decoded = decode ? decode(content(der, value)) : null;
      return {
        oid,
        shortName: RFC4514_NAMES[oid],
        displayName: DISPLAY_NAMES[oid] ?? oid,
        tag: value.tag,
        text: decoded?.text ?? null,
        problem: decoded?.problem ?? null,
        valueDer: raw(der, value),
      };
    });
  });
}

function escapeValue(value: string): string {
  let out = "";
  const chars = [...value];
  chars.forEach((ch, i) => {
    if (ch === "\u0000") out += "\\00";
    else if ('"+,;<>\\'.includes(ch)) out += "\\" + ch;
    else if (i === 0 && (ch === "#" || ch === " ")) out += "\\" + ch;
    else if (i === chars.length - 1 && ch === " ") out += "\\ ";
    else out += ch;
  });
  return out;
}

function attributeString(a: NameAttribute): string {
  // RFC 4514 2.4: types without a short name, and values that are not strings, use the #hex form.
  if (a.shortName && a.text !== null) return `${a.shortName}=${escapeValue(a.text)}`;
  return `${a.shortName ?? a.oid}=#${Buffer.from(a.valueDer).toString("hex")}`;
}

/** RFC 4514 string of a Name: RDNs from last to first, multi-valued RDNs joined with "+". */
export function rfc4514(nameDer: Uint8Array): string {
  return parseName(nameDer)
    .reverse()
    .map((rdn) => rdn.map(attributeString).join("+"))
    .join(",");
}
