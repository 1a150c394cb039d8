/**
 * Download formats and small identity helpers: PEM, PEM chains, PKCS#7
 * certs-only bundles, key fingerprints and names.
 */
import { AsnConvert } from "@peculiar/asn1-schema";
import { Certificate } from "@peculiar/asn1-x509";
import {
  CertificateChoices,
  CertificateSet,
  CMSVersion,
  ContentInfo,
  DigestAlgorithmIdentifiers,
  EncapsulatedContentInfo,
  SignedData,
  SignerInfos,
  id_data,
  id_signedData,
} from "@peculiar/asn1-cms";
import { derToPem } from "./pem.js";

export { describeKey, sha256Hex } from "./spki.js";
export { spkiFingerprint } from "./key-identity.js";
export { rfc4514 } from "./name.js";

export const certificateToPem = (der: Uint8Array): string => derToPem(der, "CERTIFICATE");

/** The leaf, then the issuing CA, then the root (PEM), as TLS clients and `openssl verify -untrusted` expect. */
export const chainPem = (leafDer: Uint8Array, ca: { readonly chainPem: string }): string => certificateToPem(leafDer) + ca.chainPem;

/**
 * A "certs-only" PKCS#7/CMS SignedData (RFC 5652 5.2 degenerate case): no
 * signers, no content, just the certificates. Read by `openssl pkcs7 -print_certs`
 * and by Windows/Java as a .p7b.
 */
export function pkcs7CertsOnly(ders: Uint8Array[]): Uint8Array {
  const signedData = new SignedData({
    version: CMSVersion.v1,
    digestAlgorithms: new DigestAlgorithmIdentifiers(),
    encapContentInfo: new EncapsulatedContentInfo({ eContentType: id_data }),
    certificates: new CertificateSet(ders.map((der) => new CertificateChoices({ certificate: AsnConvert.parse(der, Certificate) }))),
    signerInfos: new SignerInfos(),
  });
  const contentInfo = new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signedData) });
  return new Uint8Array(AsnConvert.serialize(contentInfo));
}
