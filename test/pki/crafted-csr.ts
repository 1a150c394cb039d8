/**
 * CSRs built byte by byte, for what openssl will not write: any string type
 * and content in the subject, any requested extension, and signature
 * encodings that `openssl req -verify` refuses. Signed for real with a key
 * made here, so only the crafted part is wrong.
 */
import { constants, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { encodeOid, sequence, tlv } from "../../src/pki/der.js";
import { toPem } from "./helpers.js";

export const OIDS = { C: "2.5.4.6", O: "2.5.4.10", OU: "2.5.4.11", CN: "2.5.4.3", L: "2.5.4.7", ST: "2.5.4.8" } as const;
export const TAGS = { UTF8: 0x0c, NUMERIC: 0x12, PRINTABLE: 0x13, T61: 0x14, IA5: 0x16, VISIBLE: 0x1a, UNIVERSAL: 0x1c, BMP: 0x1e } as const;

export type Attribute = readonly [keyof typeof OIDS, number, Uint8Array | string];

/** One RDN per attribute, in the given order; a string value is written as UTF-8 bytes. */
export function subject(attributes: readonly Attribute[]): Uint8Array {
  return sequence(
    ...attributes.map(([name, tag, value]) =>
      tlv(0x31, sequence(encodeOid(OIDS[name]), tlv(tag, typeof value === "string" ? Buffer.from(value, "utf8") : value))),
    ),
  );
}

/** The organization's subject with one attribute replaced or added. */
export function orgSubject(org: { name: string; country: string }, cn: Attribute[2] = "Crafted Client", extra: Attribute[] = [], cnTag: number = TAGS.UTF8): Uint8Array {
  return subject([["C", TAGS.PRINTABLE, org.country], ["O", TAGS.UTF8, org.name], ...extra, ["CN", cnTag, cn]]);
}

export const bmp = (text: string): Uint8Array => Buffer.from(text, "utf16le").swap16();

export interface RequestedExtension {
  oid: string;
  critical?: boolean;
  /** The extnValue content (DER). */
  value: Uint8Array;
}

export interface CraftOptions {
  subject: Uint8Array;
  extensions?: RequestedExtension[];
  key?: "p256" | "rsa";
  /** Unused-bits octet of the signature BIT STRING (0 is right). */
  signatureUnusedBits?: number;
  /** Extra TLVs appended inside the signature AlgorithmIdentifier. */
  extraAlgorithmParameters?: Uint8Array[];
  /** RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys): with these saltLength and trailerField INTEGER contents. */
  pss?: { saltLength: Uint8Array; trailerField?: Uint8Array };
}

const keys: Partial<Record<"p256" | "rsa", { privateKey: KeyObject; spki: Buffer }>> = {};
function keyOf(kind: "p256" | "rsa") {
  if (!keys[kind]) {
    const pair = kind === "p256" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("rsa", { modulusLength: 2048 });
    keys[kind] = { privateKey: pair.privateKey, spki: pair.publicKey.export({ type: "spki", format: "der" }) };
  }
  return keys[kind]!;
}

/** A fresh key per call (KEY_REUSE would refuse a second request with the same one). */
export function freshKeys(): void {
  delete keys.p256;
  delete keys.rsa;
}

const SHA256 = sequence(encodeOid("2.16.840.1.101.3.4.2.1"));

export function craftCsr(opts: CraftOptions): string {
  const kind = opts.key ?? "p256";
  const { privateKey, spki } = keyOf(kind);
  const attributes: Uint8Array[] = [];
  if (opts.extensions?.length) {
    const extensions = opts.extensions.map((e) =>
      sequence(encodeOid(e.oid), ...(e.critical ? [Uint8Array.of(0x01, 0x01, 0xff)] : []), tlv(0x04, e.value)),
    );
    attributes.push(sequence(encodeOid("1.2.840.113549.1.9.14"), tlv(0x31, sequence(...extensions))));
  }
  const info = sequence(Uint8Array.of(0x02, 0x01, 0x00), opts.subject, spki, tlv(0xa0, ...attributes));
  let algorithm: Uint8Array;
  let signature: Buffer;
  if (kind === "p256") {
    algorithm = sequence(encodeOid("1.2.840.10045.4.3.2"), ...(opts.extraAlgorithmParameters ?? []));
    signature = sign("sha256", info, { key: privateKey, dsaEncoding: "der" });
  } else if (opts.pss) {
    const params = sequence(
      tlv(0xa0, SHA256),
      tlv(0xa1, sequence(encodeOid("1.2.840.113549.1.1.8"), SHA256)),
      tlv(0xa2, tlv(0x02, opts.pss.saltLength)),
      ...(opts.pss.trailerField ? [tlv(0xa3, tlv(0x02, opts.pss.trailerField))] : []),
    );
    algorithm = sequence(encodeOid("1.2.840.113549.1.1.10"), params, ...(opts.extraAlgorithmParameters ?? []));
    signature = sign("sha256", info, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
  } else {
    algorithm = sequence(encodeOid("1.2.840.113549.1.1.11"), Uint8Array.of(0x05, 0x00), ...(opts.extraAlgorithmParameters ?? []));
    signature = sign("sha256", info, { key: privateKey, padding: constants.RSA_PKCS1_PADDING });
  }
  const bits = tlv(0x03, Uint8Array.of(opts.signatureUnusedBits ?? 0), signature);
  return toPem(sequence(info, algorithm, bits), "CERTIFICATE REQUEST");
}

/** basicConstraints, keyUsage and an arbitrary extension value, as extnValue contents. */
export const EXTENSION_VALUES = {
  caTrue: sequence(Uint8Array.of(0x01, 0x01, 0xff)),
  caFalse: sequence(),
  /** keyUsage keyCertSign (bit 5) + cRLSign (bit 6): 03 02 01 06. */
  keyCertSign: Uint8Array.of(0x03, 0x02, 0x01, 0x06),
  /** keyUsage digitalSignature: 03 02 07 80. */
  digitalSignature: Uint8Array.of(0x03, 0x02, 0x07, 0x80),
  /** subjectAltName dNSName evil.example. */
  san: sequence(tlv(0x82, Buffer.from("evil.example"))),
  opaque: tlv(0x04, Buffer.from("whatever")),
};
