/**
 * The strict DER round trip an auditor runs on what a CA issues: our own
 * strict reader (decode, check every value's DER form, re-encode, compare)
 * and, independently, the ASN.1 schema library's decode and re-encode.
 */
import { expect } from "vitest";
import { AsnConvert } from "@peculiar/asn1-schema";
import { Certificate, CertificateList } from "@peculiar/asn1-x509";
import { checkStrictDer } from "../../src/pki/der.js";

/** Fails the test unless `der` is one strict-DER Certificate or CertificateList that both decoders give back byte for byte. */
export function expectStrictDer(der: Uint8Array, kind: "certificate" | "crl" = "crl"): void {
  expect(() => checkStrictDer(der)).not.toThrow();
  const decoded = kind === "crl" ? AsnConvert.parse(der, CertificateList) : AsnConvert.parse(der, Certificate);
  expect(Buffer.from(AsnConvert.serialize(decoded)).equals(Buffer.from(der))).toBe(true);
}
