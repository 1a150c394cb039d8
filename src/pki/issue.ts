/**
 * Certificate issuance as pure functions: (profile, subject, key, serial,
 * validity, issuer) -> DER. Nothing here reads the clock, the database or the
 * CSR's requested extensions; the extensions come from the profile or the
 * caller, in a fixed order, so the TBSCertificate is deterministic for given
 * inputs (a faster encoder can later be compared with this one byte for byte).
 */
import "reflect-metadata";
import { randomBytes } from "node:crypto";
import {
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
  X509Certificate,
  X509CertificateGenerator,
  type JsonGeneralNames,
} from "@peculiar/x509";
import { badInput } from "../errors.js";
import { asBufferSource, encodeOid, sequence, tlv } from "./der.js";
import type { CertificateProfile } from "./profiles.js";
import { analyzeKey, subjectKeyIdentifier, toBytes } from "./spki.js";

export interface IssuerRef {
  /** The issuing CA's certificate. */
  certificate: X509Certificate;
  keys: CryptoKeyPair;
  /** The WebCrypto that owns `keys` (KeyStore.crypto). */
  crypto: Crypto;
}

export interface LeafSpec {
  profile: CertificateProfile;
  subjectDer: Uint8Array;
  spki: Uint8Array;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  crlUrl: string;
  issuer: IssuerRef;
}

export interface SubjectAltName {
  type: "dns" | "ip";
  value: string;
}

export interface CertificateSpec {
  /** Subject Name DER (nameDer() below builds one). */
  subject: Uint8Array;
  spki: Uint8Array;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  keyUsage: readonly string[];
  extendedKeyUsage: readonly string[];
  subjectAltNames?: readonly SubjectAltName[];
  crlUrl?: string;
  issuer: IssuerRef;
}

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
};

const SERIAL = /^(?:[0-9a-f]{2}){1,20}$/;

/**
 * 128 random bits as a positive INTEGER: the top bit is cleared (so DER needs
 * no 0x00 pad) and the first byte is non-zero (so the encoding is exactly 16
 * octets and the hex string is the canonical serial). Leaves 120+ bits of entropy.
 */
export function newSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  while (bytes[0] === 0) bytes[0] = randomBytes(1)[0]! & 0x7f;
  return bytes.toString("hex");
}

function checkSerial(serialHex: string): void {
  // @peculiar/x509 silently substitutes a random serial for an empty or zero one; refuse instead.
  if (!SERIAL.test(serialHex) || serialHex.startsWith("00") || /^[89a-f]/.test(serialHex)) {
    throw new Error(`serial ${JSON.stringify(serialHex)} must be lowercase hex of 1-20 octets, positive, without a leading zero octet`);
  }
}

function keyUsageFlags(names: readonly string[], forCa: boolean): KeyUsageFlags {
  let flags = 0;
  for (const name of names) {
    const flag = KEY_USAGE_FLAGS[name];
    if (flag === undefined) throw new Error(`unknown key usage ${name}`);
    if (!forCa && (flag === KeyUsageFlags.keyCertSign || flag === KeyUsageFlags.cRLSign)) {
      throw new Error(`key usage ${name} is reserved for CA certificates`);
    }
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

/** Signature parameters for the issuer's key: ECDSA with the curve's matching hash, or RSA PKCS#1 v1.5 with SHA-256. */
export function signingAlgorithmFor(privateKey: CryptoKey): EcdsaParams | RsaHashedImportParams {
  const algorithm = privateKey.algorithm as Partial<EcKeyAlgorithm> & KeyAlgorithm;
  if (algorithm.name === "ECDSA") {
    if (algorithm.namedCurve === "P-256") return { name: "ECDSA", hash: "SHA-256" };
    if (algorithm.namedCurve === "P-384") return { name: "ECDSA", hash: "SHA-384" };
    throw new Error(`unsupported issuer curve ${algorithm.namedCurve}`);
  }
  if (algorithm.name === "RSASSA-PKCS1-v1_5") return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  throw new Error(`unsupported issuer key algorithm ${algorithm.name}`);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** The issuer's subjectKeyIdentifier (or, for a certificate without one, the RFC 5280 method 1 value). */
export function keyIdentifierOf(certificate: X509Certificate): string {
  const ski = certificate.getExtension(SubjectKeyIdentifierExtension);
  if (ski) return ski.keyId;
  return hex(subjectKeyIdentifier(toBytes(certificate.publicKey.rawData)));
}

/** A Name whose DER round-trips exactly; anything else would change the subject the requester signed. */
function verbatimName(der: Uint8Array): Name {
  const name = new Name(asBufferSource(der));
  if (!Buffer.from(name.toArrayBuffer()).equals(Buffer.from(der.buffer, der.byteOffset, der.byteLength))) {
    throw badInput("SUBJECT_MISMATCH", "The subject name is not in canonical DER and cannot be copied into a certificate unchanged.");
  }
  return name;
}

export interface RawCertificateSpec {
  subject: Uint8Array;
  issuerName: Name;
  spki: Uint8Array;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** CA:TRUE with the given path length (undefined = unlimited) when set; CA:FALSE otherwise. */
  ca?: { pathLength?: number };
  keyUsage: readonly string[];
  extendedKeyUsage: readonly string[];
  subjectAltNames?: readonly SubjectAltName[];
  crlUrl?: string;
  /** Hex key identifier for authorityKeyIdentifier; omitted for a self-signed root. */
  authorityKeyId?: string;
  signingKey: CryptoKey;
  crypto: Crypto;
}

/**
 * Builds and signs any certificate of ours. Extensions, in this order:
 * basicConstraints (critical), keyUsage (critical), extKeyUsage (if any),
 * subjectAltName (if any), subjectKeyIdentifier, authorityKeyIdentifier
 * (if given), cRLDistributionPoints (if given).
 */
export async function buildCertificate(spec: RawCertificateSpec): Promise<Uint8Array> {
  checkSerial(spec.serialHex);
  if (!(spec.notAfter.getTime() > spec.notBefore.getTime())) throw new Error("notAfter must be after notBefore");
  const isCa = spec.ca !== undefined;
  const extensions: Extension[] = [
    new BasicConstraintsExtension(isCa, spec.ca?.pathLength, true),
    new KeyUsagesExtension(keyUsageFlags(spec.keyUsage, isCa), true),
  ];
  if (spec.extendedKeyUsage.length > 0) extensions.push(new ExtendedKeyUsageExtension(ekuOids(spec.extendedKeyUsage), false));
  if (spec.subjectAltNames && spec.subjectAltNames.length > 0) {
    const names: JsonGeneralNames = spec.subjectAltNames.map((n) => ({ type: n.type, value: n.value }));
    extensions.push(new SubjectAlternativeNameExtension(names, false));
  }
  extensions.push(new SubjectKeyIdentifierExtension(hex(subjectKeyIdentifier(spec.spki)), false));
  if (spec.authorityKeyId) extensions.push(new AuthorityKeyIdentifierExtension(spec.authorityKeyId, false));
  if (spec.crlUrl) extensions.push(new CRLDistributionPointsExtension([spec.crlUrl], false));

  const certificate = await X509CertificateGenerator.create(
    {
      serialNumber: spec.serialHex,
      subject: verbatimName(spec.subject),
      issuer: spec.issuerName,
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

/** An end-entity certificate (CA:FALSE) signed by `spec.issuer`; the KMS's own TLS/signing/encryption certificates use this. */
export async function issueCertificate(spec: CertificateSpec): Promise<Uint8Array> {
  const issuer = spec.issuer.certificate;
  if (spec.notAfter.getTime() > issuer.notAfter.getTime()) {
    throw badInput("VALIDITY_EXCEEDS_CA", `The certificate would expire after its issuing CA (${issuer.notAfter.toISOString()}).`);
  }
  return buildCertificate({
    subject: spec.subject,
    issuerName: issuer.subjectName,
    spki: spec.spki,
    serialHex: spec.serialHex,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    keyUsage: spec.keyUsage,
    extendedKeyUsage: spec.extendedKeyUsage,
    subjectAltNames: spec.subjectAltNames,
    crlUrl: spec.crlUrl,
    authorityKeyId: keyIdentifierOf(issuer),
    signingKey: spec.issuer.keys.privateKey,
    crypto: spec.issuer.crypto,
  });
}

const ENCIPHERMENT = new Set(["keyEncipherment", "dataEncipherment"]);
const DAY_MS = 86_400_000;

/** A participant's certificate: the profile decides the extensions; only subject and key come from the CSR. */
export async function issueLeafCertificate(spec: LeafSpec): Promise<Uint8Array> {
  const key = analyzeKey(spec.spki);
  if (!spec.profile.allowedKeyAlgorithms.includes(key.label)) {
    throw badInput("UNSUPPORTED_KEY_ALGORITHM", `The key algorithm ${key.label} is not accepted for ${spec.profile.kind} certificates.`);
  }
  const days = (spec.notAfter.getTime() - spec.notBefore.getTime()) / DAY_MS;
  if (!(days > 0)) throw badInput("INVALID_VALIDITY", "The certificate's notAfter must be after its notBefore.");
  if (days > spec.profile.maxValidityDays) {
    throw badInput(
      "VALIDITY_TOO_LONG",
      `The requested validity of ${Math.ceil(days)} days exceeds the ${spec.profile.maxValidityDays}-day maximum for ${spec.profile.kind} certificates.`,
    );
  }
  // Only an RSA key can encipher; an EC certificate claiming keyEncipherment would be wrong.
  const keyUsage = spec.profile.keyUsage.filter((u) => key.family === "RSA" || !ENCIPHERMENT.has(u));
  return issueCertificate({
    subject: spec.subjectDer,
    spki: spec.spki,
    serialHex: spec.serialHex,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    keyUsage,
    extendedKeyUsage: spec.profile.extendedKeyUsage,
    crlUrl: spec.crlUrl,
    issuer: spec.issuer,
  });
}

const NAME_OIDS: Record<string, string> = {
  CN: "2.5.4.3",
  O: "2.5.4.10",
  OU: "2.5.4.11",
  C: "2.5.4.6",
  L: "2.5.4.7",
  ST: "2.5.4.8",
  serialNumber: "2.5.4.5",
};
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]+$/;

/**
 * A Name DER from attributes in DER order (most general first), e.g.
 * [["O", "KeyPortal"], ["CN", "KeyPortal MTF Root CA"]]. Values are
 * PrintableString when they fit, UTF8String otherwise. Written directly
 * because @peculiar/x509's Name reads a value starting with "#" as hex.
 */
export function nameDer(attributes: ReadonlyArray<readonly [string, string]>): Uint8Array {
  return sequence(
    ...attributes.map(([type, value]) => {
      const oid = NAME_OIDS[type] ?? (/^\d+(\.\d+)+$/.test(type) ? type : undefined);
      if (!oid) throw new Error(`unknown name attribute ${type}`);
      if (value.length === 0) throw new Error(`empty value for name attribute ${type}`);
      const encoded = PRINTABLE.test(value) ? tlv(0x13, Buffer.from(value, "latin1")) : tlv(0x0c, Buffer.from(value, "utf8"));
      return tlv(0x31, sequence(encodeOid(oid), encoded));
    }),
  );
}

export interface ServerCertificateSpec {
  subject: Uint8Array;
  spki: Uint8Array;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: readonly string[];
  ipAddresses?: readonly string[];
  crlUrl?: string;
  issuer: IssuerRef;
}

/**
 * A TLS server certificate (the KMS's own): serverAuth, digitalSignature
 * (+ keyEncipherment for RSA keys, for TLS 1.2 RSA key exchange), DNS/IP SANs.
 */
export function issueServerCertificate(spec: ServerCertificateSpec): Promise<Uint8Array> {
  const names: SubjectAltName[] = [
    ...spec.dnsNames.map((value) => ({ type: "dns" as const, value })),
    ...(spec.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  if (names.length === 0) throw new Error("a server certificate needs at least one DNS name or IP address");
  const rsa = analyzeKey(spec.spki).family === "RSA";
  return issueCertificate({
    subject: spec.subject,
    spki: spec.spki,
    serialHex: spec.serialHex,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    keyUsage: rsa ? ["digitalSignature", "keyEncipherment"] : ["digitalSignature"],
    extendedKeyUsage: ["serverAuth"],
    subjectAltNames: names,
    crlUrl: spec.crlUrl,
    issuer: spec.issuer,
  });
}
