/**
 * The @peculiar/x509 issuance path, as production ran it before tbs.ts: kept
 * only as the oracle that the hand-written encoder is compared with, byte for
 * byte (test/pki/tbs.test.ts), and as the "before" of the issuance bench.
 * Nothing in src/ imports this file.
 *
 * Its extension names-to-bits and names-to-OIDs tables are its own, not
 * tbs.ts's, so that a wrong entry in either shows up as a difference.
 * It applies no policy (serial format, validity against the CA): it encodes
 * whatever it is given, so the encoder can also be compared on inputs that
 * issue.ts refuses.
 */
import "reflect-metadata";
import {
  AuthorityInfoAccessExtension,
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  CRLDistributionPointsExtension,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  type JsonGeneralNames,
} from "@peculiar/x509";
import { asBufferSource } from "../../src/pki/der.js";
import { keyIdentifierOf, leafCertificateSpec, signingAlgorithmFor, type CertificateSpec, type LeafSpec, type RawCertificateSpec } from "../../src/pki/issue.js";
import { subjectKeyIdentifier } from "../../src/pki/spki.js";

const KEY_USAGE_FLAGS: Record<string, KeyUsageFlags> = {
  digitalSignature: KeyUsageFlags.digitalSignature,
  nonRepudiation: KeyUsageFlags.nonRepudiation,
  contentCommitment: KeyUsageFlags.nonRepudiation,
  keyEncipherment: KeyUsageFlags.keyEncipherment,
  dataEncipherment: KeyUsageFlags.dataEncipherment,
  keyAgreement: KeyUsageFlags.keyAgreement,
  keyCertSign: KeyUsageFlags.keyCertSign,
  cRLSign: KeyUsageFlags.cRLSign,
};

const EKU_OIDS: Record<string, string> = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  codeSigning: "1.3.6.1.5.5.7.3.3",
  emailProtection: "1.3.6.1.5.5.7.3.4",
  timeStamping: "1.3.6.1.5.5.7.3.8",
  OCSPSigning: "1.3.6.1.5.5.7.3.9",
  documentSigning: "1.3.6.1.5.5.7.3.36",
};

function keyUsageFlags(names: readonly string[]): KeyUsageFlags {
  let flags = 0;
  for (const name of names) {
    const flag = KEY_USAGE_FLAGS[name];
    if (flag === undefined) throw new Error(`unknown key usage ${name}`);
    flags |= flag;
  }
  return flags;
}

function ekuOids(names: readonly string[]): string[] {
  return names.map((name) => {
    const oid = EKU_OIDS[name] ?? (/^\d+(\.\d+)+$/.test(name) ? name : undefined);
    if (!oid) throw new Error(`unknown extended key usage ${name}`);
    return oid;
  });
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** Like RawCertificateSpec, but the issuer may also be a library Name (as the old issueCertificate passed it). */
export type LibrarySpec = Omit<RawCertificateSpec, "issuer"> & { issuer: Uint8Array | Name };

/** A Name whose DER round-trips exactly; anything else would change the subject the requester signed. */
function verbatimName(der: Uint8Array): Name {
  const name = new Name(asBufferSource(der));
  if (!Buffer.from(name.toArrayBuffer()).equals(Buffer.from(der))) throw new Error("the subject Name does not round-trip through @peculiar/x509");
  return name;
}

/** The old buildCertificate: same extensions, same order, through X509CertificateGenerator. */
export async function buildCertificateWithLibrary(spec: LibrarySpec): Promise<Uint8Array> {
  const isCa = spec.ca !== undefined;
  const extensions: Extension[] = [
    new BasicConstraintsExtension(isCa, spec.ca?.pathLength, true),
    new KeyUsagesExtension(keyUsageFlags(spec.keyUsage), true),
  ];
  if (spec.extendedKeyUsage.length > 0) extensions.push(new ExtendedKeyUsageExtension(ekuOids(spec.extendedKeyUsage), false));
  if (spec.subjectAltNames && spec.subjectAltNames.length > 0) {
    const names: JsonGeneralNames = spec.subjectAltNames.map((n) => ({ type: n.type, value: n.value }));
    extensions.push(new SubjectAlternativeNameExtension(names, false));
  }
  extensions.push(new SubjectKeyIdentifierExtension(hex(subjectKeyIdentifier(spec.spki)), false));
  if (spec.authorityKeyId) extensions.push(new AuthorityKeyIdentifierExtension(spec.authorityKeyId, false));
  if (spec.crlUrl) extensions.push(new CRLDistributionPointsExtension([spec.crlUrl], false));
  if (spec.authorityInfoAccess) {
    const { ocsp, caIssuers } = spec.authorityInfoAccess;
    extensions.push(new AuthorityInfoAccessExtension({ ...(ocsp ? { ocsp: [ocsp] } : {}), ...(caIssuers ? { caIssuers: [caIssuers] } : {}) }, false));
  }

  const certificate = await X509CertificateGenerator.create(
    {
      serialNumber: spec.serialHex,
      subject: verbatimName(spec.subject),
      issuer: spec.issuer instanceof Name ? spec.issuer : new Name(asBufferSource(spec.issuer)),
      notBefore: spec.notBefore,
      notAfter: spec.notAfter,
      publicKey: asBufferSource(spec.spki),
      signingKey: spec.signingKey,
      signingAlgorithm: signingAlgorithmFor(spec.signingKey),
      extensions,
    },
    spec.crypto,
  );
  return new Uint8Array(certificate.rawData);
}

/** The old issueCertificate (without its validity-against-CA refusal): issuer Name and key identifier from the CA certificate object. */
export function issueCertificateWithLibrary(spec: CertificateSpec): Promise<Uint8Array> {
  const issuer = spec.issuer.certificate;
  return buildCertificateWithLibrary({
    subject: spec.subject,
    issuer: issuer.subjectName,
    spki: spec.spki,
    serialHex: spec.serialHex,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    keyUsage: spec.keyUsage,
    extendedKeyUsage: spec.extendedKeyUsage,
    subjectAltNames: spec.subjectAltNames,
    crlUrl: spec.crlUrl,
    authorityInfoAccess: spec.authorityInfoAccess,
    authorityKeyId: keyIdentifierOf(issuer),
    signingKey: spec.issuer.keys.privateKey,
    crypto: spec.issuer.crypto,
    signer: spec.issuer.signer,
  });
}

/** The old issueLeafCertificate: the same profile rules (leafCertificateSpec), then the library. */
export function issueLeafCertificateWithLibrary(spec: LeafSpec): Promise<Uint8Array> {
  return issueCertificateWithLibrary(leafCertificateSpec(spec));
}
