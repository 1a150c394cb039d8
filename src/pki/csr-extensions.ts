/**
 * The extensions a PKCS#10 request asks for (the PKCS#9 extensionRequest
 * attribute), judged against what the profile grants. The profile decides
 * a certificate's extensions; a request can only learn that it asked for
 * something it will not get:
 *
 * - a request to be a CA (basicConstraints cA TRUE, or keyUsage keyCertSign
 *   or cRLSign) is refused: CA_REQUESTED;
 * - a critical extension the certificate will not carry as asked is refused:
 *   UNSUPPORTED_CRITICAL_EXTENSION (a critical extension means "do not use
 *   the certificate without honouring this"; signing it anyway would hand the
 *   participant something other than what they asked for);
 * - a non-critical one that is not honoured is reported (ignoredExtensions).
 *
 * Honoured means the certificate says the same: basicConstraints CA:FALSE,
 * a keyUsage within the usages granted to this key, an extKeyUsage within
 * the profile's. Everything else (subjectAltName, a requested key
 * identifier, ...) is not copied, so it is ignored.
 */
import { badInput } from "../kernel/errors.js";
import { children, content, decodeOid, DerError, type Tlv } from "./der.js";
import type { CertificateProfile } from "./profiles.js";
import { decodeBasicConstraintsCa, decodeExtendedKeyUsage, decodeKeyUsage, EKU_OIDS } from "./tbs.js";

const OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
/** Microsoft's older name for the same attribute (certreq). */
const OID_MS_EXTENSION_REQUEST = "1.3.6.1.4.1.311.2.1.14";

export const EXTENSION_NAMES: Record<string, string> = {
  "2.5.29.14": "subjectKeyIdentifier",
  "2.5.29.15": "keyUsage",
  "2.5.29.17": "subjectAltName",
  "2.5.29.18": "issuerAltName",
  "2.5.29.19": "basicConstraints",
  "2.5.29.30": "nameConstraints",
  "2.5.29.31": "cRLDistributionPoints",
  "2.5.29.32": "certificatePolicies",
  "2.5.29.35": "authorityKeyIdentifier",
  "2.5.29.37": "extKeyUsage",
  "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
  "1.3.6.1.5.5.7.1.24": "tlsFeature",
  "2.16.840.1.113730.1.1": "nsCertType",
  "2.16.840.1.113730.1.13": "nsComment",
};

/** At most this many requested extensions: a real request has a handful. */
const MAX_REQUESTED_EXTENSIONS = 32;

export interface RequestedExtension {
  oid: string;
  critical: boolean;
  /** The extnValue's content (the DER inside the OCTET STRING). */
  value: Uint8Array;
}

const invalid = (message: string) => badInput("INVALID_CSR", message);

/** The requested extensions of a CertificationRequestInfo's attributes [0] TLV (absent: none). */
export function requestedExtensions(der: Uint8Array, attributes: Tlv | undefined): RequestedExtension[] {
  if (!attributes) return [];
  try {
    const out: RequestedExtension[] = [];
    for (const attribute of children(der, attributes)) {
      const parts = attribute.tag === 0x30 ? children(der, attribute) : [];
      if (parts.length !== 2 || parts[0]!.tag !== 0x06 || parts[1]!.tag !== 0x31) throw new DerError("an attribute is type and SET of values");
      const oid = decodeOid(content(der, parts[0]!));
      if (oid !== OID_EXTENSION_REQUEST && oid !== OID_MS_EXTENSION_REQUEST) continue;
      for (const extensions of children(der, parts[1]!)) {
        if (extensions.tag !== 0x30) throw new DerError("Extensions is a SEQUENCE");
        for (const extension of children(der, extensions)) out.push(readExtension(der, extension));
      }
    }
    if (out.length > MAX_REQUESTED_EXTENSIONS) {
      throw invalid(`The CSR requests ${out.length} extensions; at most ${MAX_REQUESTED_EXTENSIONS} are read.`);
    }
    const seen = new Set<string>();
    for (const e of out) {
      if (seen.has(e.oid)) throw invalid(`The CSR requests the extension ${nameOf(e.oid)} more than once (RFC 5280 4.2).`);
      seen.add(e.oid);
    }
    return out;
  } catch (e) {
    if (!(e instanceof DerError)) throw e;
    throw invalid("The CSR's requested extensions could not be read.");
  }
}

function readExtension(der: Uint8Array, extension: Tlv): RequestedExtension {
  const parts = extension.tag === 0x30 ? children(der, extension) : [];
  if (parts.length < 2 || parts.length > 3 || parts[0]!.tag !== 0x06) throw new DerError("an Extension is id, critical, value");
  let critical = false;
  if (parts.length === 3) {
    const flag = content(der, parts[1]!);
    // DER: BOOLEAN is FF for TRUE, and a FALSE equal to the DEFAULT is left out.
    if (parts[1]!.tag !== 0x01 || flag.length !== 1 || flag[0] !== 0xff) throw new DerError("critical is an explicit DER TRUE");
    critical = true;
  }
  const value = parts[parts.length - 1]!;
  if (value.tag !== 0x04) throw new DerError("extnValue is an OCTET STRING");
  return { oid: decodeOid(content(der, parts[0]!)), critical, value: content(der, value) };
}

export const nameOf = (oid: string): string => (EXTENSION_NAMES[oid] ? `${EXTENSION_NAMES[oid]} (${oid})` : oid);

/**
 * Applies the policy above and returns the OIDs of the non-critical
 * extensions that are not honoured, in request order.
 * `grantedKeyUsage` is what the certificate will carry for this key.
 */
export function judgeRequestedExtensions(
  requested: readonly RequestedExtension[],
  profile: CertificateProfile,
  grantedKeyUsage: readonly string[],
): string[] {
  const ignored: string[] = [];
  for (const e of requested) {
    let honoured = false;
    try {
      if (e.oid === "2.5.29.19") {
        if (decodeBasicConstraintsCa(e.value)) throw badInput("CA_REQUESTED", "The CSR asks to be a CA (basicConstraints cA TRUE); participants' certificates are never CAs.");
        honoured = true;
      } else if (e.oid === "2.5.29.15") {
        const usages = decodeKeyUsage(e.value);
        const caUsage = usages.find((u) => u === "keyCertSign" || u === "cRLSign");
        if (caUsage) throw badInput("CA_REQUESTED", `The CSR asks for the key usage ${caUsage}, which only a CA has; participants' certificates are never CAs.`);
        honoured = usages.every((u) => grantedKeyUsage.includes(u));
      } else if (e.oid === "2.5.29.37") {
        const granted = new Set(profile.extendedKeyUsage.map((name) => EKU_OIDS[name] ?? name));
        honoured = decodeExtendedKeyUsage(e.value).every((oid) => granted.has(oid));
      }
    } catch (error) {
      if (!(error instanceof DerError)) throw error;
      throw invalid(`The CSR's requested ${nameOf(e.oid)} extension could not be read.`);
    }
    if (honoured) continue;
    if (e.critical) {
      throw badInput(
        "UNSUPPORTED_CRITICAL_EXTENSION",
        `The CSR marks the extension ${nameOf(e.oid)} critical, but a ${profile.kind} certificate will not carry it as requested; make the request without it.`,
      );
    }
    ignored.push(e.oid);
  }
  return ignored;
}
