/**
 * CRLs (RFC 5280 v2) signed by an environment's issuing CA: authorityKeyIdentifier,
 * cRLNumber, and a reasonCode per entry.
 */
import "reflect-metadata";
import { AuthorityKeyIdentifierExtension, Extension, X509CrlGenerator, type X509CrlEntryParams } from "@peculiar/x509";
import { CRL_REASON_CODE, RevocationReason } from "../domain.js";
import { asBufferSource, encodeUnsignedInteger } from "./der.js";
import { keyIdentifierOf, signingAlgorithmFor, type IssuerRef } from "./issue.js";
import { derToPem } from "./pem.js";

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

const OID_CRL_NUMBER = "2.5.29.20";
const MAX_CRL_NUMBER = (1n << 159n) - 1n; // 20 octets, positive

export async function buildCrl(input: CrlInput, issuer: IssuerRef): Promise<Uint8Array> {
  if (input.crlNumber < 0n || input.crlNumber > MAX_CRL_NUMBER) throw new Error("cRLNumber must be a non-negative integer of at most 20 octets");
  if (!(input.nextUpdate.getTime() > input.thisUpdate.getTime())) throw new Error("nextUpdate must be after thisUpdate");
  // Sorted so that the same set of revocations always yields the same TBSCertList.
  const entries: X509CrlEntryParams[] = [...input.entries]
    .sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime() || a.serialHex.localeCompare(b.serialHex))
    .map((e) => ({
      serialNumber: e.serialHex,
      revocationDate: e.revokedAt,
      // RFC 5280 5.3.1: reason "unspecified" is expressed by leaving reasonCode out
      // (the generator omits it for code 0); every other reason is written.
      reason: CRL_REASON_CODE[e.reason],
    }));
  const crl = await X509CrlGenerator.create(
    {
      issuer: issuer.certificate.subjectName,
      thisUpdate: input.thisUpdate,
      nextUpdate: input.nextUpdate,
      entries,
      extensions: [
        new AuthorityKeyIdentifierExtension(keyIdentifierOf(issuer.certificate), false),
        // @peculiar/x509 has no cRLNumber helper: a raw extension whose value is the DER INTEGER.
        new Extension(OID_CRL_NUMBER, false, asBufferSource(encodeUnsignedInteger(input.crlNumber))),
      ],
      signingAlgorithm: signingAlgorithmFor(issuer.keys.privateKey),
      signingKey: issuer.keys.privateKey,
    },
    issuer.crypto,
  );
  return new Uint8Array(crl.rawData);
}

/** PEM with the label OpenSSL expects ("X509 CRL"; X509Crl#toString("pem") writes "CRL", which OpenSSL rejects). */
export const crlToPem = (der: Uint8Array): string => derToPem(der, "X509 CRL");
