/**
 * CRLs (RFC 5280 v2), written directly as DER like certificates (tbs.ts):
 * authorityKeyIdentifier, cRLNumber, and a reasonCode per entry except for
 * "unspecified". An entry with no extensions has no crlEntryExtensions field
 * at all (RFC 5280 5.1.2.6: absent, never an empty SEQUENCE), and a CRL with
 * no entries has no revokedCertificates field (5.1.2.6 too).
 */
import "reflect-metadata";
import { CRL_REASON_CODE, RevocationReason } from "../kernel/domain.js";
import { checkValidityDate, encodeOid, encodeTime, encodeUnsignedInteger, sequence, tlv } from "./der.js";
import { certificateSubjectDer, keyIdentifierOf, type IssuerRef } from "./issue.js";
import { lintSigned, lintTbsCertList } from "./lint.js";
import { derToPem } from "./pem.js";
import { signatureAlgorithmFor } from "./algorithms.js";
import { authorityKeyIdentifierExtension, encodeSerialNumber, signCertificate } from "./tbs.js";

export interface CrlEntry {
  serialHex: string;
  revokedAt: Date;
  reason: RevocationReason;
}

export interface CrlInput {
  entries: CrlEntry[];
  thisUpdate: Date;
  nextUpdate: Date;
  /** Monotonically increasing per issuer (RFC 5280 5.2.3); at most 20 octets. */
  crlNumber: bigint;
}

const MAX_CRL_NUMBER = (1n << 159n) - 1n; // 20 octets, positive
const VERSION_V2 = Uint8Array.of(0x02, 0x01, 0x01);
const OID_CRL_NUMBER = encodeOid("2.5.29.20");
const OID_REASON_CODE = encodeOid("2.5.29.21");

/** reasonCode entry extension, not critical: OCTET STRING { ENUMERATED code }. */
function reasonCodeExtension(code: number): Uint8Array {
  return sequence(OID_REASON_CODE, tlv(0x04, tlv(0x0a, Uint8Array.of(code))));
}

/** One revokedCertificates entry: serial, date, and a reasonCode unless the reason is unspecified (5.3.1: then it is left out). */
function entryDer(entry: CrlEntry): Uint8Array {
  checkValidityDate(entry.revokedAt, "revocationDate");
  const code = CRL_REASON_CODE[entry.reason];
  const parts = [encodeSerialNumber(entry.serialHex), encodeTime(entry.revokedAt)];
  if (code !== 0) parts.push(sequence(reasonCodeExtension(code)));
  return sequence(...parts);
}

/** The TBSCertList for `input`, issued by `issuer` with the given signature AlgorithmIdentifier. */
export function encodeTbsCertList(input: CrlInput, issuer: IssuerRef, signatureAlgorithm: Uint8Array): Uint8Array<ArrayBuffer> {
  if (input.crlNumber < 0n || input.crlNumber > MAX_CRL_NUMBER) throw new Error("cRLNumber must be a non-negative integer of at most 20 octets");
  if (!(input.nextUpdate.getTime() > input.thisUpdate.getTime())) throw new Error("nextUpdate must be after thisUpdate");
  checkValidityDate(input.thisUpdate, "thisUpdate");
  checkValidityDate(input.nextUpdate, "nextUpdate");
  // Sorted so that the same set of revocations always yields the same TBSCertList.
  const entries = [...input.entries]
    .sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime() || a.serialHex.localeCompare(b.serialHex))
    .map(entryDer);
  const extensions = sequence(
    authorityKeyIdentifierExtension(Buffer.from(keyIdentifierOf(issuer.certificate), "hex")),
    sequence(OID_CRL_NUMBER, tlv(0x04, encodeUnsignedInteger(input.crlNumber))),
  );
  const tbs = sequence(
    VERSION_V2,
    signatureAlgorithm,
    certificateSubjectDer(new Uint8Array(issuer.certificate.rawData)),
    encodeTime(input.thisUpdate),
    encodeTime(input.nextUpdate),
    ...(entries.length > 0 ? [sequence(...entries)] : []),
    tlv(0xa0, extensions),
  );
  return new Uint8Array(tbs);
}

export async function buildCrl(input: CrlInput, issuer: IssuerRef): Promise<Uint8Array> {
  const algorithm = signatureAlgorithmFor(issuer.keys.privateKey);
  const tbs = encodeTbsCertList(input, issuer, algorithm.der);
  lintTbsCertList(tbs);
  // A CertificateList is shaped as a Certificate: { tbs, signatureAlgorithm, signatureValue }.
  const crl = await signCertificate(tbs, { algorithm, privateKey: issuer.keys.privateKey, signer: issuer.signer });
  lintSigned(crl);
  return crl;
}

/** PEM with the label OpenSSL expects ("X509 CRL"; X509Crl#toString("pem") writes "CRL", which OpenSSL rejects). */
export const crlToPem = (der: Uint8Array): string => derToPem(der, "X509 CRL");
