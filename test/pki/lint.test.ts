/**
 * Lint before signing: a well-formed template passes, and a deliberately
 * broken template for each rule fails with that rule's name.
 */
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CertificateKind } from "../../src/kernel/domain.js";
import { encodeOid, sequence, tlv } from "../../src/pki/der.js";
import { nameDer } from "../../src/pki/issue.js";
import { LintError, lintTbsCertList, lintTbsCertificate, type LintExpectations } from "../../src/pki/lint.js";
import { DEFAULT_PROFILES, type CertificateProfile } from "../../src/pki/profiles.js";
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  crlDistributionPointsExtension,
  encodeTime,
  extendedKeyUsageExtension,
  keyUsageExtension,
  subjectKeyIdentifierExtension,
} from "../../src/pki/tbs.js";

const spkiOf = (kind: "ec" | "rsa") =>
  new Uint8Array(
    (kind === "ec" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("rsa", { modulusLength: 2048 })).publicKey.export({
      type: "spki",
      format: "der",
    }),
  );
const EC = spkiOf("ec");
const RSA = spkiOf("rsa");

const ISSUER = nameDer([["C", "US"], ["O", "KeyPortal"], ["CN", "KeyPortal MTF Issuing CA"]]);
const SUBJECT = nameDer([["C", "GB"], ["O", "Acme Bank"], ["CN", "Acme Client"]]);
const ECDSA_SHA256 = sequence(encodeOid("1.2.840.10045.4.3.2"));
const KEY_ID = new Uint8Array(20).fill(7);
const AIA = authorityInfoAccessExtension({ ocsp: "http://127.0.0.1:4000/ocsp/MTF", caIssuers: "http://127.0.0.1:4000/ca/MTF/issuing.crt" });
const CDP = crlDistributionPointsExtension("http://127.0.0.1:4000/crl/MTF.crl");
const ext = (oid: string, value: Uint8Array, critical = false) =>
  sequence(encodeOid(oid), ...(critical ? [Uint8Array.of(0x01, 0x01, 0xff)] : []), tlv(0x04, value));

interface Template {
  version: Uint8Array;
  serial: Uint8Array;
  issuer: Uint8Array;
  notBefore: Uint8Array;
  notAfter: Uint8Array;
  subject: Uint8Array;
  spki: Uint8Array;
  extensions: Uint8Array[] | null;
}

/** A good MTLS_CLIENT leaf for an EC key, as issue.ts would write it. */
const leaf = (): Template => ({
  version: tlv(0xa0, tlv(0x02, Uint8Array.of(2))),
  serial: tlv(0x02, Uint8Array.from([0x3a, ...new Array<number>(15).fill(0x11)])),
  issuer: ISSUER,
  notBefore: encodeTime(new Date("2026-11-28T08:00:00Z")),
  notAfter: encodeTime(new Date("2027-11-28T08:00:00Z")),
  subject: SUBJECT,
  spki: EC,
  extensions: [
    basicConstraintsExtension(),
    keyUsageExtension(["digitalSignature"], false),
    extendedKeyUsageExtension(["clientAuth"]),
    subjectKeyIdentifierExtension(KEY_ID),
    authorityKeyIdentifierExtension(KEY_ID),
    CDP,
    AIA,
  ],
});

const encode = (t: Template): Uint8Array =>
  sequence(t.version, t.serial, ECDSA_SHA256, t.issuer, sequence(t.notBefore, t.notAfter), t.subject, t.spki, ...(t.extensions ? [tlv(0xa3, sequence(...t.extensions))] : []));

const MTLS: LintExpectations = { role: "leaf", profile: DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT] };

function failedRule(tbs: Uint8Array, expect: LintExpectations): string | null {
  try {
    lintTbsCertificate(tbs, expect);
    return null;
  } catch (e) {
    if (!(e instanceof LintError)) throw e;
    expect_(e.code).toBe("INTERNAL_SERVER_ERROR");
    expect_(e.reason).toBe("LINT_FAILED");
    return e.rule;
  }
}
const expect_ = expect;

const replaceExtension = (t: Template, index: number, replacement?: Uint8Array): Template => {
  const extensions = [...t.extensions!];
  if (replacement) extensions[index] = replacement;
  else extensions.splice(index, 1);
  return { ...t, extensions };
};

describe("lint before signing: certificates", () => {
  it("should pass the well-formed templates: a leaf of each kind, an intermediate and a root", () => {
    expect(failedRule(encode(leaf()), MTLS)).toBeNull();
    const signing = replaceExtension(
      replaceExtension(leaf(), 1, keyUsageExtension(["digitalSignature", "nonRepudiation"], false)),
      2,
      extendedKeyUsageExtension(["emailProtection", "documentSigning"]),
    );
    expect(failedRule(encode(signing), { role: "leaf", profile: DEFAULT_PROFILES[CertificateKind.SIGNING] })).toBeNull();
    const encryption = replaceExtension(
      replaceExtension({ ...leaf(), spki: RSA }, 1, keyUsageExtension(["keyEncipherment", "dataEncipherment"], false)),
      2,
      extendedKeyUsageExtension(["emailProtection"]),
    );
    expect(failedRule(encode(encryption), { role: "leaf", profile: DEFAULT_PROFILES[CertificateKind.ENCRYPTION] })).toBeNull();
    expect(failedRule(encode(intermediate()), { role: "intermediate" })).toBeNull();
    const rootName = intermediate().issuer;
    expect(failedRule(encode({ ...intermediate(), subject: rootName, extensions: intermediate().extensions!.slice(0, 3) }), { role: "root" })).toBeNull();
  });

  const intermediate = (): Template => ({
    ...leaf(),
    subject: ISSUER,
    issuer: nameDer([["C", "US"], ["O", "KeyPortal"], ["CN", "KeyPortal MTF Root CA"]]),
    extensions: [basicConstraintsExtension({ pathLength: 0 }), keyUsageExtension(["keyCertSign", "cRLSign"], true), subjectKeyIdentifierExtension(KEY_ID), authorityKeyIdentifierExtension(KEY_ID), CDP, AIA],
  });
  const customProfile: CertificateProfile = { ...DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT], allowedKeyAlgorithms: ["RSA-2048"] };
  const utf8 = (oid: string, text: string) => tlv(0x31, sequence(encodeOid(oid), tlv(0x0c, Buffer.from(text))));

  const cases: Array<[rule: string, template: () => Template, expectations?: LintExpectations]> = [
    ["DER_STRICT", () => ({ ...leaf(), serial: tlv(0x02, Uint8Array.from([0x00, 0x3a, ...new Array<number>(15).fill(1)])) })],
    ["VERSION_V3", () => ({ ...leaf(), version: tlv(0xa0, tlv(0x02, Uint8Array.of(1))) })],
    ["SERIAL_POSITIVE", () => ({ ...leaf(), serial: tlv(0x02, Uint8Array.from([0x9a, ...new Array<number>(15).fill(1)])) })],
    ["SERIAL_LENGTH", () => ({ ...leaf(), serial: tlv(0x02, Uint8Array.from([0x3a, ...new Array<number>(20).fill(1)])) })],
    ["SERIAL_ENTROPY", () => ({ ...leaf(), serial: tlv(0x02, Uint8Array.of(0x3a, 1, 2, 3)) })],
    ["VALIDITY_TIME_TYPE", () => ({ ...leaf(), notAfter: tlv(0x18, Buffer.from("20271128080000Z")) })],
    ["VALIDITY_ORDER", () => ({ ...leaf(), notAfter: encodeTime(new Date("2026-11-27T08:00:00Z")) })],
    ["SUBJECT_NOT_EMPTY", () => ({ ...leaf(), subject: sequence() })],
    ["NAME_STRING_TYPE", () => ({ ...leaf(), subject: sequence(tlv(0x31, sequence(encodeOid("2.5.4.6"), tlv(0x13, Buffer.from("GB")))), tlv(0x31, sequence(encodeOid("2.5.4.3"), tlv(0x1e, Buffer.from("\0A\0B"))))) })],
    ["NAME_STRING_VALID", () => ({ ...leaf(), subject: sequence(tlv(0x31, sequence(encodeOid("2.5.4.6"), tlv(0x13, Buffer.from("GB")))), tlv(0x31, sequence(encodeOid("2.5.4.3"), tlv(0x13, Buffer.from("a@b"))))) })],
    ["NAME_PRINTABLE", () => ({ ...leaf(), subject: sequence(tlv(0x31, sequence(encodeOid("2.5.4.6"), tlv(0x13, Buffer.from("GB")))), utf8("2.5.4.3", "Acme\u0001")) })],
    ["NAME_VALUE_LENGTH", () => ({ ...leaf(), subject: sequence(tlv(0x31, sequence(encodeOid("2.5.4.6"), tlv(0x13, Buffer.from("GB")))), utf8("2.5.4.3", "é".repeat(65))) })],
    ["COUNTRY_PRINTABLE_STRING", () => ({ ...leaf(), subject: sequence(utf8("2.5.4.6", "GB"), utf8("2.5.4.3", "Acme")) })],
    ["SUBJECT_COUNTRY", () => ({ ...leaf(), subject: nameDer([["O", "Acme Bank"], ["CN", "Acme Client"]]) })],
    ["ISSUER_NAME", () => ({ ...leaf(), issuer: SUBJECT })],
    ["EXTENSIONS_PRESENT", () => ({ ...leaf(), extensions: null })],
    ["EXTENSIONS_NOT_EMPTY", () => ({ ...leaf(), extensions: [] })],
    ["EXTENSION_UNIQUE", () => ({ ...leaf(), extensions: [...leaf().extensions!, subjectKeyIdentifierExtension(KEY_ID)] })],
    ["BASIC_CONSTRAINTS_CRITICAL", () => replaceExtension(leaf(), 0, ext("2.5.29.19", sequence()))],
    ["BASIC_CONSTRAINTS_CA", () => replaceExtension(leaf(), 0, basicConstraintsExtension({}))],
    ["KEY_USAGE_CRITICAL", () => replaceExtension(leaf(), 1)],
    ["KEY_USAGE_NOT_EMPTY", () => replaceExtension(leaf(), 1, keyUsageExtension([], false))],
    ["CA_KEY_USAGE", () => replaceExtension(intermediate(), 1, keyUsageExtension(["keyCertSign", "cRLSign", "digitalSignature"], true)), { role: "intermediate" }],
    ["LEAF_NO_CA_KEY_USAGE", () => replaceExtension(leaf(), 1, keyUsageExtension(["digitalSignature", "keyCertSign"], true))],
    ["EC_NO_ENCIPHERMENT", () => replaceExtension(leaf(), 1, keyUsageExtension(["digitalSignature", "keyEncipherment"], false))],
    ["LEAF_EKU_REQUIRED", () => replaceExtension(leaf(), 2)],
    ["LEAF_EKU_SPECIFIC", () => replaceExtension(leaf(), 2, extendedKeyUsageExtension(["2.5.29.37.0"]))],
    ["CLIENT_AUTH_KEY_USAGE", () => replaceExtension({ ...leaf(), spki: RSA }, 1, keyUsageExtension(["digitalSignature", "keyEncipherment"], false)), { role: "leaf" }],
    ["PROFILE_KEY_USAGE", () => replaceExtension(leaf(), 1, keyUsageExtension(["digitalSignature", "nonRepudiation"], false))],
    ["PROFILE_EXTENDED_KEY_USAGE", () => replaceExtension(leaf(), 2, extendedKeyUsageExtension(["clientAuth", "serverAuth"]))],
    ["PROFILE_KEY_ALGORITHM", () => leaf(), { role: "leaf", profile: customProfile }],
    ["CA_NO_EKU", () => ({ ...intermediate(), extensions: [...intermediate().extensions!, extendedKeyUsageExtension(["OCSPSigning"])] }), { role: "intermediate" }],
    ["SKI_PRESENT", () => replaceExtension(leaf(), 3)],
    ["AKI_PRESENT", () => replaceExtension(leaf(), 4)],
    ["CDP_PRESENT", () => replaceExtension(leaf(), 5)],
    ["AIA_PRESENT", () => replaceExtension(leaf(), 6)],
    ["EXTENSION_VALUE", () => ({ ...leaf(), extensions: [...leaf().extensions!, ext("1.3.6.1.4.1.99999.3", new Uint8Array(0))] })],
  ];

  it.each(cases)("should refuse a template that breaks %s", (rule, template, expectations = MTLS) => {
    expect(failedRule(encode(template()), expectations)).toBe(rule);
  });
});

describe("lint before signing: CRLs", () => {
  const AKI = authorityKeyIdentifierExtension(KEY_ID);
  const NUMBER = ext("2.5.29.20", tlv(0x02, Uint8Array.of(5)));
  const reason = (code: number) => ext("2.5.29.21", tlv(0x0a, Uint8Array.of(code)));
  const entry = (serial: number, extensions?: Uint8Array) =>
    sequence(tlv(0x02, Uint8Array.of(serial)), encodeTime(new Date("2026-11-28T09:00:00Z")), ...(extensions ? [extensions] : []));
  interface CrlTemplate {
    version: Uint8Array;
    nextUpdate: Uint8Array | null;
    entries: Uint8Array[] | null;
    extensions: Uint8Array[] | null;
  }
  const good = (): CrlTemplate => ({
    version: tlv(0x02, Uint8Array.of(1)),
    nextUpdate: encodeTime(new Date("2026-12-05T08:00:00Z")),
    entries: [entry(1), entry(2, sequence(reason(1)))],
    extensions: [AKI, NUMBER],
  });
  const encodeCrl = (t: CrlTemplate) =>
    sequence(
      t.version,
      ECDSA_SHA256,
      ISSUER,
      encodeTime(new Date("2026-11-28T08:00:00Z")),
      ...(t.nextUpdate ? [t.nextUpdate] : []),
      ...(t.entries ? [sequence(...t.entries)] : []),
      ...(t.extensions ? [tlv(0xa0, sequence(...t.extensions))] : []),
    );
  const crlRule = (t: CrlTemplate): string | null => {
    try {
      lintTbsCertList(encodeCrl(t));
      return null;
    } catch (e) {
      if (!(e instanceof LintError)) throw e;
      return e.rule;
    }
  };

  it("should pass a well-formed CRL, with entries and without", () => {
    expect(crlRule(good())).toBeNull();
    expect(crlRule({ ...good(), entries: null })).toBeNull();
  });

  it.each<[string, () => CrlTemplate]>([
    ["DER_STRICT", () => ({ ...good(), entries: [entry(1, sequence(ext("2.5.29.21", tlv(0x0a, Uint8Array.of(0, 1)))))] })],
    ["CRL_VERSION_V2", () => ({ ...good(), version: tlv(0x02, Uint8Array.of(0)) })],
    ["CRL_NEXT_UPDATE", () => ({ ...good(), nextUpdate: null, entries: null })],
    ["CRL_UPDATE_ORDER", () => ({ ...good(), nextUpdate: encodeTime(new Date("2026-11-27T08:00:00Z")) })],
    ["CRL_NO_EMPTY_LIST", () => ({ ...good(), entries: [] })],
    ["CRL_ENTRY_UNIQUE", () => ({ ...good(), entries: [entry(1), entry(1)] })],
    // Finding 8: an entry revoked as unspecified carried crlEntryExtensions 30 00.
    ["CRL_ENTRY_EXTENSIONS_NOT_EMPTY", () => ({ ...good(), entries: [entry(1, sequence())] })],
    ["CRL_REASON_UNSPECIFIED_ABSENT", () => ({ ...good(), entries: [entry(1, sequence(reason(0)))] })],
    ["CRL_EXTENSIONS_PRESENT", () => ({ ...good(), extensions: null })],
    ["CRL_AKI_PRESENT", () => ({ ...good(), extensions: [NUMBER] })],
    ["CRL_NUMBER_PRESENT", () => ({ ...good(), extensions: [AKI] })],
  ])("should refuse a CRL template that breaks %s", (rule, template) => {
    expect(crlRule(template())).toBe(rule);
  });
});
