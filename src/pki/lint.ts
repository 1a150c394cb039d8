/**
 * Lint before signing, as Boulder does: the TBSCertificate (or TBSCertList)
 * is read back from its bytes and checked against the profile and the RFC
 * 5280 rules that the certificate linters (zlint, pkilint, x509lint) found
 * broken here before; only then is it signed. A failure is a bug of ours,
 * never the client's: LintError is an INTERNAL_SERVER_ERROR (reason
 * LINT_FAILED) whose rule is logged and audited, not shown to the client.
 *
 * Each rule has a stable name (the `rule` of the error); test/pki/lint.test.ts
 * feeds a deliberately broken template to each.
 */
import { DomainError } from "../kernel/errors.js";
import { checkStrictDer, children, content, decodeOid, readTlv, DerError, type Tlv } from "./der.js";
import { parseName, STRING_TYPE_NAMES } from "./name.js";
import { grantedKeyUsage, type CertificateProfile } from "./profiles.js";
import { analyzeKey } from "./spki.js";
import { decodeBasicConstraintsCa, decodeExtendedKeyUsage, decodeKeyUsage, EKU_OIDS } from "./tbs.js";

export class LintError extends DomainError {
  constructor(
    /** The failed rule, e.g. "LEAF_EKU_REQUIRED". */
    readonly rule: string,
    /** What exactly was wrong (for the log and the audit, not the client). */
    readonly detail: string,
  ) {
    super("INTERNAL_SERVER_ERROR", "LINT_FAILED", "The certificate did not pass the checks before signing and was not signed; the KMS operators have been alerted.");
  }

  /** The audit records the rule; the operators' log also gets what was wrong (AuditedRefusal). */
  get auditDetails(): Record<string, unknown> {
    return { lintRule: this.rule };
  }

  get alert(): { message: string; fields: Record<string, unknown> } {
    return { message: "certificate lint failed; nothing was signed", fields: { rule: this.rule, detail: this.detail } };
  }
}

export type CertificateRole = "root" | "intermediate" | "leaf";

export interface LintExpectations {
  role: CertificateRole;
  /** A participant's certificate must carry exactly this profile's usages. */
  profile?: CertificateProfile;
}

const OID = {
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  cRLDistributionPoints: "2.5.29.31",
  authorityInfoAccess: "1.3.6.1.5.5.7.1.1",
  cRLNumber: "2.5.29.20",
  reasonCode: "2.5.29.21",
  anyExtendedKeyUsage: "2.5.29.37.0",
};
const CA_KEY_USAGES = ["keyCertSign", "cRLSign"];
const ENCIPHERMENT = ["keyEncipherment", "dataEncipherment"];
const MAX_VALUE_LENGTH = 64;
const CONTROL = /[\p{Cc}\p{Cn}\p{Cs}\u202a-\u202e\u2066-\u2069]/u;

function rule(condition: unknown, name: string, detail: string): asserts condition {
  if (!condition) throw new LintError(name, detail);
}

interface Extension {
  oid: string;
  critical: boolean;
  value: Uint8Array;
}

function readExtensions(der: Uint8Array, holder: Tlv | undefined): Extension[] {
  if (!holder) return [];
  const list = children(der, holder)[0];
  rule(list?.tag === 0x30, "EXTENSIONS_WELL_FORMED", "the extensions field holds no SEQUENCE");
  const out = children(der, list).map((e) => {
    const parts = children(der, e);
    const critical = parts.length === 3;
    const value = parts[parts.length - 1]!;
    return { oid: decodeOid(content(der, parts[0]!)), critical, value: content(der, value) };
  });
  rule(out.length > 0, "EXTENSIONS_NOT_EMPTY", "an empty extensions SEQUENCE must be left out (RFC 5280 4.1.2.9, 5.1.2.6)");
  const seen = new Set<string>();
  for (const e of out) {
    rule(!seen.has(e.oid), "EXTENSION_UNIQUE", `extension ${e.oid} appears twice (RFC 5280 4.2)`);
    seen.add(e.oid);
    strictValue(e);
  }
  return out;
}

/** An extnValue holds one DER value; the tree walk does not look inside OCTET STRINGs, so each is walked here. */
function strictValue(e: Extension): void {
  rule(e.value.length > 0, "EXTENSION_VALUE", `extension ${e.oid} has an empty value`);
  try {
    checkStrictDer(e.value);
  } catch (error) {
    throw new LintError("DER_STRICT", `extension ${e.oid}: ${(error as Error).message}`);
  }
}

/** RFC 5280 4.1.2.4/4.1.2.6 and the house subject policy: string types, C, lengths, characters. */
function lintName(der: Uint8Array, field: "subject" | "issuer"): void {
  const rdns = parseName(der);
  rule(field === "issuer" || rdns.length > 0, "SUBJECT_NOT_EMPTY", "the subject is empty");
  for (const rdn of rdns) {
    for (const attr of rdn) {
      const name = attr.shortName ?? attr.oid;
      rule(attr.tag === 0x13 || attr.tag === 0x0c, "NAME_STRING_TYPE", `${field} ${name} is a ${STRING_TYPE_NAMES[attr.tag] ?? `tag ${attr.tag}`}, not PrintableString or UTF8String`);
      rule(!attr.problem && attr.text !== null, "NAME_STRING_VALID", `${field} ${name} ${attr.problem ?? "has no text"}`);
      rule(!CONTROL.test(attr.text), "NAME_PRINTABLE", `${field} ${name} holds a control or unassigned character`);
      rule([...attr.text].length <= MAX_VALUE_LENGTH, "NAME_VALUE_LENGTH", `${field} ${name} is longer than ${MAX_VALUE_LENGTH} characters`);
      if (name === "C") {
        rule(attr.tag === 0x13 && /^[A-Z]{2}$/.test(attr.text), "COUNTRY_PRINTABLE_STRING", `${field} C must be a two-letter PrintableString`);
      }
    }
  }
  if (field === "subject") rule(rdns.some((rdn) => rdn.some((a) => a.shortName === "C")), "SUBJECT_COUNTRY", "the subject has no C");
}

/**
 * Checks a TBSCertificate before it is signed. Throws LintError naming the
 * first rule that fails.
 */
export function lintTbsCertificate(tbs: Uint8Array, expect: LintExpectations): void {
  try {
    lintCertificateFields(tbs, expect);
  } catch (e) {
    if (e instanceof LintError) throw e;
    throw new LintError("DER_WELL_FORMED", e instanceof Error ? e.message : String(e));
  }
}

function lintCertificateFields(tbs: Uint8Array, expect: LintExpectations): void {
  try {
    checkStrictDer(tbs);
  } catch (e) {
    throw new LintError("DER_STRICT", (e as Error).message);
  }
  const fields = children(tbs, readTlv(tbs, 0));
  rule(fields[0]?.tag === 0xa0 && content(tbs, children(tbs, fields[0])[0]!)[0] === 2, "VERSION_V3", "not a v3 certificate");
  const [, serial, , issuer, validity, subject, spki, extensionsField] = fields;
  rule(serial?.tag === 0x02, "SERIAL_PRESENT", "no serialNumber");
  const serialBytes = content(tbs, serial);
  rule(!(serialBytes[0]! & 0x80) && serialBytes.some((b) => b !== 0), "SERIAL_POSITIVE", "the serial is not positive (RFC 5280 4.1.2.2)");
  rule(serialBytes.length <= 20, "SERIAL_LENGTH", "the serial is longer than 20 octets");
  rule(serialBytes.length >= 8, "SERIAL_ENTROPY", "the serial is shorter than 64 bits (CA/B Forum: at least 64 bits of entropy)");
  const [notBefore, notAfter] = children(tbs, validity!);
  for (const t of [notBefore!, notAfter!]) {
    const year = Number(encodedInstant(tbs, t).slice(0, 4));
    rule(t.tag === (year >= 2050 ? 0x18 : 0x17), "VALIDITY_TIME_TYPE", "UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 4.1.2.5)");
  }
  rule(Buffer.compare(Buffer.from(encodedInstant(tbs, notBefore!)), Buffer.from(encodedInstant(tbs, notAfter!))) < 0, "VALIDITY_ORDER", "notAfter is not after notBefore");
  const issuerDer = tbs.subarray(issuer!.start, issuer!.end);
  const subjectDer = tbs.subarray(subject!.start, subject!.end);
  lintName(subjectDer, "subject");
  const selfIssued = Buffer.from(issuerDer).equals(Buffer.from(subjectDer));
  rule(selfIssued === (expect.role === "root"), "ISSUER_NAME", expect.role === "root" ? "a root names itself as issuer" : "the issuer is the subject");

  const key = analyzeKey(tbs.subarray(spki!.start, spki!.end));
  rule(extensionsField?.tag === 0xa3, "EXTENSIONS_PRESENT", "a v3 certificate of ours always has extensions");
  const extensions = readExtensions(tbs, extensionsField);
  const get = (oid: string) => extensions.find((e) => e.oid === oid);

  const bc = get(OID.basicConstraints);
  rule(bc?.critical, "BASIC_CONSTRAINTS_CRITICAL", "basicConstraints must be present and critical");
  const ca = decodeBasicConstraintsCa(bc.value);
  rule(ca === (expect.role !== "leaf"), "BASIC_CONSTRAINTS_CA", expect.role === "leaf" ? "a leaf says CA:TRUE" : "a CA says CA:FALSE");

  const ku = get(OID.keyUsage);
  rule(ku?.critical, "KEY_USAGE_CRITICAL", "keyUsage must be present and critical");
  const usages = decodeKeyUsage(ku.value);
  rule(usages.length > 0, "KEY_USAGE_NOT_EMPTY", "keyUsage has no bit set (RFC 5280 4.2.1.3)");
  if (ca) {
    rule(
      usages.length === CA_KEY_USAGES.length && CA_KEY_USAGES.every((u) => usages.includes(u)),
      "CA_KEY_USAGE",
      `a CA's key usage is keyCertSign and cRLSign only (CA/B Forum), not ${usages.join(", ")}`,
    );
  } else {
    rule(!usages.some((u) => CA_KEY_USAGES.includes(u)), "LEAF_NO_CA_KEY_USAGE", "a leaf has keyCertSign or cRLSign");
  }
  if (key.family === "EC") rule(!usages.some((u) => ENCIPHERMENT.includes(u)), "EC_NO_ENCIPHERMENT", "an EC key cannot encipher");

  const eku = get(OID.extKeyUsage);
  if (expect.role === "leaf") {
    rule(eku, "LEAF_EKU_REQUIRED", "a leaf without extKeyUsage is usable for any purpose");
    const purposes = decodeExtendedKeyUsage(eku.value);
    rule(purposes.length > 0 && !purposes.includes(OID.anyExtendedKeyUsage), "LEAF_EKU_SPECIFIC", "extKeyUsage is empty or anyExtendedKeyUsage");
    if (purposes.includes(EKU_OIDS.clientAuth!) && !purposes.includes(EKU_OIDS.serverAuth!)) {
      rule(!usages.some((u) => ENCIPHERMENT.includes(u)), "CLIENT_AUTH_KEY_USAGE", "a TLS client only signs: no keyEncipherment or dataEncipherment");
    }
    if (expect.profile) {
      const wanted = grantedKeyUsage(expect.profile, key.family);
      rule(wanted.length === usages.length && wanted.every((u) => usages.includes(u)), "PROFILE_KEY_USAGE", `key usage ${usages.join(", ")} is not the profile's ${wanted.join(", ")}`);
      const wantedEku = expect.profile.extendedKeyUsage.map((n) => EKU_OIDS[n] ?? n);
      rule(wantedEku.length === purposes.length && wantedEku.every((p) => purposes.includes(p)), "PROFILE_EXTENDED_KEY_USAGE", "extKeyUsage is not the profile's");
      rule(expect.profile.allowedKeyAlgorithms.includes(key.label), "PROFILE_KEY_ALGORITHM", `${key.label} is not allowed for ${expect.profile.kind}`);
    }
  } else {
    rule(!eku, "CA_NO_EKU", "our CA certificates carry no extKeyUsage");
  }
  rule(get(OID.subjectKeyIdentifier), "SKI_PRESENT", "no subjectKeyIdentifier (RFC 5280 4.2.1.2)");
  if (expect.role !== "root") {
    rule(get(OID.authorityKeyIdentifier), "AKI_PRESENT", "no authorityKeyIdentifier (RFC 5280 4.2.1.1)");
    rule(get(OID.cRLDistributionPoints), "CDP_PRESENT", "no cRLDistributionPoints: a relying party could not check revocation");
    rule(get(OID.authorityInfoAccess), "AIA_PRESENT", "no authorityInfoAccess: a relying party could not find the issuer");
  }
}

/** The time as YYYYMMDDHHMMSSZ whatever its type, for ordering. */
function encodedInstant(der: Uint8Array, t: Tlv): string {
  const text = Buffer.from(content(der, t)).toString("latin1");
  if (t.tag === 0x18) return text;
  return `${Number(text.slice(0, 2)) >= 50 ? "19" : "20"}${text}`;
}

/** Checks a TBSCertList before it is signed (RFC 5280 5.1, 5.2, 5.3). */
export function lintTbsCertList(tbs: Uint8Array): void {
  try {
    lintCrlFields(tbs);
  } catch (e) {
    if (e instanceof LintError) throw e;
    throw new LintError("DER_WELL_FORMED", e instanceof Error ? e.message : String(e));
  }
}

function lintCrlFields(tbs: Uint8Array): void {
  try {
    checkStrictDer(tbs);
  } catch (e) {
    throw new LintError("DER_STRICT", (e as Error).message);
  }
  const fields = children(tbs, readTlv(tbs, 0));
  rule(fields[0]?.tag === 0x02 && content(tbs, fields[0])[0] === 1, "CRL_VERSION_V2", "not a v2 CRL");
  const [, , issuer, thisUpdate, nextUpdate] = fields;
  lintName(tbs.subarray(issuer!.start, issuer!.end), "issuer");
  rule(nextUpdate && (nextUpdate.tag === 0x17 || nextUpdate.tag === 0x18), "CRL_NEXT_UPDATE", "nextUpdate is required (RFC 5280 5.1.2.5)");
  rule(encodedInstant(tbs, thisUpdate!) < encodedInstant(tbs, nextUpdate), "CRL_UPDATE_ORDER", "nextUpdate is not after thisUpdate");
  let index = 5;
  if (fields[index]?.tag === 0x30) {
    const entries = children(tbs, fields[index]!);
    rule(entries.length > 0, "CRL_NO_EMPTY_LIST", "an empty revokedCertificates must be left out (RFC 5280 5.1.2.6)");
    const serials = new Set<string>();
    for (const entry of entries) {
      const parts = children(tbs, entry);
      const serial = Buffer.from(content(tbs, parts[0]!)).toString("hex");
      rule(!serials.has(serial), "CRL_ENTRY_UNIQUE", `serial ${serial} is listed twice`);
      serials.add(serial);
      if (parts[2]) {
        const extensions = children(tbs, parts[2]);
        rule(extensions.length > 0, "CRL_ENTRY_EXTENSIONS_NOT_EMPTY", `entry ${serial} has an empty crlEntryExtensions (RFC 5280 5.1.2.6: absent when empty)`);
        for (const e of extensions) {
          const fields = children(tbs, e);
          const oid = decodeOid(content(tbs, fields[0]!));
          const value = fields[fields.length - 1]!;
          strictValue({ oid, critical: fields.length === 3, value: content(tbs, value) });
          if (oid !== OID.reasonCode) continue;
          const code = content(tbs, readTlv(tbs, value.contentStart, value.end));
          rule(code[0] !== 0, "CRL_REASON_UNSPECIFIED_ABSENT", `entry ${serial} carries reasonCode unspecified, which is expressed by leaving it out (RFC 5280 5.3.1)`);
        }
      }
    }
    index++;
  }
  rule(fields[index]?.tag === 0xa0, "CRL_EXTENSIONS_PRESENT", "no crlExtensions");
  const extensions = readExtensions(tbs, fields[index]);
  rule(extensions.some((e) => e.oid === OID.authorityKeyIdentifier), "CRL_AKI_PRESENT", "no authorityKeyIdentifier (RFC 5280 5.2.1)");
  rule(extensions.some((e) => e.oid === OID.cRLNumber), "CRL_NUMBER_PRESENT", "no cRLNumber (RFC 5280 5.2.3)");
}

/** The signed result, checked once more as strict DER (decode, re-encode, compare). */
export function lintSigned(der: Uint8Array): void {
  try {
    checkStrictDer(der);
  } catch (e) {
    if (!(e instanceof DerError)) throw e;
    throw new LintError("SIGNED_DER_STRICT", e.message);
  }
}
