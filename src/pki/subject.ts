/**
 * The subject policy for participants' requests, and the subject a
 * certificate gets: built anew from the validated attributes, never copied.
 *
 * A value is accepted only as PrintableString or UTF8String (RFC 5280
 * 4.1.2.6: what new certificates use). BMPString, TeletexString,
 * UniversalString, VisibleString, IA5String and NumericString values are
 * refused rather than re-encoded: T61 has no single reading, and a request
 * that says one thing in one tool and another in the next is not one to
 * certify. The certificate's subject is then re-encoded: C as
 * PrintableString, the others PrintableString when they fit its character
 * set, UTF8String otherwise (nameDer).
 */
import { badInput } from "../kernel/errors.js";
import { nameDer } from "./issue.js";
import { codePoint, parseName, STRING_TYPE_NAMES, type NameAttribute } from "./name.js";
import type { CertificateProfile } from "./profiles.js";

/** RFC 5280 appendix A upper bounds are 64 for CN, O and OU (128 for L and ST); the house limit is 64 for all. */
export const MAX_SUBJECT_VALUE_LENGTH = 64;
/** OU may repeat (departments), a few times; every other attribute appears at most once. */
export const MAX_ORGANIZATIONAL_UNITS = 4;

const UTF8_STRING = 0x0c;
const PRINTABLE_STRING = 0x13;

/**
 * Characters no subject value may hold: controls (C0, DEL, C1), unassigned
 * code points, private use, lone surrogates, and the bidirectional controls
 * that make a name display as something else (U+202E reverses the text after it).
 */
const FORBIDDEN_CHARACTER = /[\p{Cc}\p{Cn}\p{Co}\p{Cs}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

export interface ValidatedSubject {
  /** [short name, value] in DER order, most general first. */
  attributes: Array<[string, string]>;
  /** The Name the certificate carries, re-encoded from `attributes`. */
  der: Uint8Array;
}

const mismatch = (message: string) => badInput("SUBJECT_MISMATCH", message);

function checkValue(attr: NameAttribute & { shortName: string }): string {
  const name = attr.shortName;
  const type = STRING_TYPE_NAMES[attr.tag];
  if (attr.text === null || type === undefined) throw mismatch(`The subject attribute ${name} is not a text value.`);
  if (attr.problem) throw badInput("SUBJECT_ENCODING_INVALID", `The subject attribute ${name} is a ${type} that ${attr.problem}.`);
  if (attr.tag !== PRINTABLE_STRING && attr.tag !== UTF8_STRING) {
    throw badInput(
      "SUBJECT_STRING_TYPE",
      `The subject attribute ${name} is a ${type}; only PrintableString and UTF8String are accepted (RFC 5280 4.1.2.6). ` +
        "Make the request with UTF-8 strings (openssl req -utf8, or string_mask = utf8only).",
    );
  }
  const forbidden = [...attr.text].find((ch) => FORBIDDEN_CHARACTER.test(ch));
  if (forbidden !== undefined) {
    throw badInput(
      "SUBJECT_CHARACTER_NOT_ALLOWED",
      `The subject attribute ${name} holds ${codePoint(forbidden)}, a control, unassigned or bidirectional-override character; only printable characters are accepted.`,
    );
  }
  const length = [...attr.text].length;
  if (length > MAX_SUBJECT_VALUE_LENGTH) {
    throw badInput("SUBJECT_VALUE_TOO_LONG", `The subject attribute ${name} is ${length} characters long; at most ${MAX_SUBJECT_VALUE_LENGTH} are allowed.`);
  }
  if (attr.text.trim() === "") throw mismatch(`The subject attribute ${name} is empty.`);
  if (name === "C" && !/^[A-Z]{2}$/.test(attr.text)) {
    throw mismatch("The subject country (C) must be a two-letter ISO 3166-1 code in capitals.");
  }
  return attr.text;
}

/**
 * Checks a CSR's subject against the profile and the organization, and
 * returns the subject to certify. Checks run per attribute in DER order,
 * encoding before content, so that no message ever quotes a value that
 * could hold a control character.
 */
export function validateSubject(
  subjectDer: Uint8Array,
  profile: CertificateProfile,
  expected: { organizationName: string; country: string },
): ValidatedSubject {
  let rdns: NameAttribute[][];
  try {
    rdns = parseName(subjectDer);
  } catch {
    throw badInput("INVALID_CSR", "The CSR's subject name could not be read.");
  }
  const attributes: Array<[string, string]> = [];
  const counts = new Map<string, number>();
  for (const rdn of rdns) {
    if (rdn.length > 1) {
      throw mismatch(`The subject has a multi-valued RDN (${rdn.map((a) => a.displayName).join("+")}); use one attribute per RDN.`);
    }
    const attr = rdn[0]!;
    const shortName = attr.shortName;
    if (!shortName || !profile.allowedSubjectAttributes.includes(shortName)) {
      throw mismatch(
        `The subject attribute ${attr.displayName} is not allowed; allowed attributes are ${profile.allowedSubjectAttributes.join(", ")}.`,
      );
    }
    const count = (counts.get(shortName) ?? 0) + 1;
    counts.set(shortName, count);
    const limit = shortName === "OU" ? MAX_ORGANIZATIONAL_UNITS : 1;
    if (count > limit) {
      throw badInput(
        "SUBJECT_ATTRIBUTE_REPEATED",
        limit === 1
          ? `The subject has more than one ${shortName} attribute; at most one is allowed.`
          : `The subject has more than ${limit} ${shortName} attributes; at most ${limit} are allowed.`,
      );
    }
    attributes.push([shortName, checkValue({ ...attr, shortName })]);
  }
  for (const required of profile.requiredSubjectAttributes) {
    if (!counts.get(required)) {
      throw mismatch(`The subject has no ${required} attribute; ${profile.requiredSubjectAttributes.join(", ")} are required.`);
    }
  }
  const one = (name: string) => attributes.find(([n]) => n === name)?.[1];
  const org = one("O");
  if (org !== undefined && org !== expected.organizationName) {
    throw mismatch(`The subject organization (O) is ${JSON.stringify(org)} but must be exactly ${JSON.stringify(expected.organizationName)}.`);
  }
  const country = one("C");
  if (country !== undefined && country !== expected.country) {
    throw mismatch(`The subject country (C) is "${country}" but must be "${expected.country}".`);
  }
  return { attributes, der: nameDer(attributes) };
}
