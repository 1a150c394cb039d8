/**
 * Certificate issuance as pure functions: (profile, subject, key, serial,
 * validity, issuer) -> DER. Nothing here reads the clock, the database or the
 * CSR's requested extensions; the extensions come from the profile or the
 * caller, in a fixed order, so the TBSCertificate is deterministic for given
 * inputs.
 *
 * The DER is written by tbs.ts. What never changes per issuing CA (issuer
 * Name, signature AlgorithmIdentifier, authorityKeyIdentifier and CRL
 * distribution point extensions) is encoded once per IssuerRef, and the
 * basicConstraints/keyUsage/extKeyUsage run once per key usage set; per
 * certificate only serial, validity, subject, key and key identifier are
 * encoded. The @peculiar/x509 generator that used to do this is kept, as the
 * oracle the encoder is compared with byte for byte, in test/pki/library-path.ts.
 */
import "reflect-metadata";
import { randomFillSync } from "node:crypto";
import { SubjectKeyIdentifierExtension, type X509Certificate } from "@peculiar/x509";
import { badInput } from "../kernel/errors.js";
import { certificateFields, concat, DerError, encodeOid, sequence, tlv } from "./der.js";
import { parseName, PRINTABLE_STRING } from "./name.js";
import { grantedKeyUsage, type CertificateProfile } from "./profiles.js";
import { lintSigned, lintTbsCertificate, type LintExpectations } from "./lint.js";
import { analyzeKey, subjectKeyIdentifier, toBytes } from "./spki.js";
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  checkValidityDate,
  crlDistributionPointsExtension,
  encodeSerialNumber,
  encodeTbsCertificate,
  extendedKeyUsageExtension,
  keyUsageExtension,
  signCertificate,
  subjectAltNameExtension,
  subjectKeyIdentifierExtension,
  type AuthorityInfoAccess,
  type SigningKey,
  type SubjectAltName,
} from "./tbs.js";
import { signatureAlgorithmFor, webCryptoSignParams } from "./algorithms.js";
import type { Signer } from "./keystore/port.js";
import { DAY_MS } from "../kernel/time.js";

export type { AuthorityInfoAccess, SubjectAltName } from "./tbs.js";

export interface IssuerRef {
  /** The issuing CA's certificate. */
  certificate: X509Certificate;
  keys: CryptoKeyPair;
  /** The WebCrypto that owns `keys` (KeyStore.crypto): for exporting public keys and decrypting, never for signing. */
  crypto: Crypto;
  /** The key store that holds `keys` and signs with them (the signer port). */
  signer: Signer;
}

export interface LeafSpec {
  profile: CertificateProfile;
  /** Lint the certificate before signing it (CertificateAuthority.issue always does); the profile is the expectation. */
  lint?: boolean;
  subjectDer: Uint8Array;
  spki: Uint8Array;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  crlUrl: string;
  authorityInfoAccess?: AuthorityInfoAccess;
  issuer: IssuerRef;
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
  authorityInfoAccess?: AuthorityInfoAccess;
  issuer: IssuerRef;
  /** When set, the TBSCertificate is linted against these before it is signed (lint.ts), and the result checked as strict DER. */
  lint?: LintExpectations;
}

const SERIAL = /^(?:[0-9a-f]{2}){1,20}$/;

/**
 * Random bytes drawn from node:crypto a few kilobytes at a time (as Node's own
 * randomUUID does): a call into the CSPRNG per serial cost about as much as
 * encoding the rest of the certificate. Each byte is handed out once.
 */
const randomPool = Buffer.alloc(4096);
let randomPoolNext = randomPool.length;

function takeRandom(count: number): Buffer {
  if (randomPoolNext + count > randomPool.length) {
    randomFillSync(randomPool);
    randomPoolNext = 0;
  }
  const out = Buffer.from(randomPool.subarray(randomPoolNext, randomPoolNext + count));
  randomPoolNext += count;
  return out;
}

/**
 * 128 random bits as a positive INTEGER: the top bit is cleared (so DER needs
 * no 0x00 pad) and the first byte is non-zero (so the encoding is exactly 16
 * octets and the hex string is the canonical serial). Leaves 120+ bits of entropy.
 */
export function newSerialHex(): string {
  const bytes = takeRandom(16);
  bytes[0] = bytes[0]! & 0x7f;
  while (bytes[0] === 0) bytes[0] = takeRandom(1)[0]! & 0x7f;
  return bytes.toString("hex");
}

/**
 * Our serials are lowercase hex of 1-20 octets whose DER INTEGER content is
 * the hex itself: no leading zero octet, top bit clear. Then the stored hex,
 * the certificate's serial and the CRL's entry are the same string, and an
 * empty or zero serial never reaches the encoder.
 */
function checkSerial(serialHex: string): void {
  if (!SERIAL.test(serialHex) || serialHex.startsWith("00") || /^[89a-f]/.test(serialHex)) {
    throw new Error(`serial ${JSON.stringify(serialHex)} must be lowercase hex of 1-20 octets, positive, without a leading zero octet`);
  }
}

/** Signature parameters naming the hash, for @peculiar/x509's generators (algorithms.ts decides). */
export const signingAlgorithmFor = (privateKey: CryptoKey): EcdsaParams | RsaHashedImportParams => webCryptoSignParams(privateKey);

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** The issuer's subjectKeyIdentifier (or, for a certificate without one, the RFC 5280 method 1 value). */
export function keyIdentifierOf(certificate: X509Certificate): string {
  const ski = certificate.getExtension(SubjectKeyIdentifierExtension);
  if (ski) return ski.keyId;
  return hex(subjectKeyIdentifier(toBytes(certificate.publicKey.rawData)));
}

/**
 * The subject Name TLV of a certificate, as its bytes. A certificate's issuer
 * field must be its issuer's subject (RFC 5280 4.1.2.4), so it is copied, not re-encoded.
 */
export function certificateSubjectDer(der: Uint8Array): Uint8Array {
  return certificateFields(der).subject;
}

/**
 * The subject is copied verbatim, so it must be one well-formed DER Name
 * (SEQUENCE OF non-empty SET OF { OID, value }); anything else would put
 * bytes into the certificate that no relying party could read as a name.
 */
function checkSubjectName(der: Uint8Array): void {
  try {
    parseName(der); // name.ts's walker: one SEQUENCE OF non-empty SET OF { OID, value }
  } catch (e) {
    if (!(e instanceof DerError)) throw e;
    throw badInput("SUBJECT_MISMATCH", "The subject name is not in canonical DER and cannot be copied into a certificate unchanged.");
  }
}

interface Fields {
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  subject: Uint8Array;
  spki: Uint8Array;
  lint?: LintExpectations;
}

/** Checks the per-certificate fields and signs the TBSCertificate made of them, the issuer's parts and the extensions. */
async function signFields(fields: Fields, issuerName: Uint8Array, extensions: readonly Uint8Array[], signer: SigningKey): Promise<Uint8Array> {
  checkSerial(fields.serialHex);
  checkValidityDate(fields.notBefore, "notBefore");
  checkValidityDate(fields.notAfter, "notAfter");
  if (!(fields.notAfter.getTime() > fields.notBefore.getTime())) throw new Error("notAfter must be after notBefore");
  checkSubjectName(fields.subject);
  const tbs = encodeTbsCertificate({
    serialNumber: encodeSerialNumber(fields.serialHex),
    signatureAlgorithm: signer.algorithm.der,
    issuer: issuerName,
    notBefore: fields.notBefore,
    notAfter: fields.notAfter,
    subject: fields.subject,
    spki: fields.spki,
    extensions,
  });
  if (!fields.lint) return signCertificate(tbs, signer);
  lintTbsCertificate(tbs, fields.lint);
  const certificate = await signCertificate(tbs, signer);
  lintSigned(certificate);
  return certificate;
}

export interface RawCertificateSpec {
  subject: Uint8Array;
  /** The issuer Name DER: the subject of the issuer's certificate (certificateSubjectDer), or `subject` for a self-signed root. */
  issuer: Uint8Array;
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
  authorityInfoAccess?: AuthorityInfoAccess;
  lint?: LintExpectations;
  /** Hex key identifier for authorityKeyIdentifier; omitted for a self-signed root. */
  authorityKeyId?: string;
  signingKey: CryptoKey;
  /** The WebCrypto that owns signingKey (KeyStore.crypto). */
  crypto: Crypto;
  /** The key store that holds signingKey and signs with it. */
  signer: Signer;
}

/**
 * Builds and signs any certificate of ours (the CA hierarchy uses it; leaves
 * go through issueCertificate, which caches the issuer's parts). Extensions,
 * in this order: basicConstraints (critical), keyUsage (critical),
 * extKeyUsage (if any), subjectAltName (if any), subjectKeyIdentifier,
 * authorityKeyIdentifier (if given), cRLDistributionPoints (if given),
 * authorityInfoAccess (if given).
 */
export async function buildCertificate(spec: RawCertificateSpec): Promise<Uint8Array> {
  const extensions = [basicConstraintsExtension(spec.ca), keyUsageExtension(spec.keyUsage, spec.ca !== undefined)];
  if (spec.extendedKeyUsage.length > 0) extensions.push(extendedKeyUsageExtension(spec.extendedKeyUsage));
  if (spec.subjectAltNames && spec.subjectAltNames.length > 0) extensions.push(subjectAltNameExtension(spec.subjectAltNames));
  extensions.push(subjectKeyIdentifierExtension(subjectKeyIdentifier(spec.spki)));
  if (spec.authorityKeyId) extensions.push(authorityKeyIdentifierExtension(Buffer.from(spec.authorityKeyId, "hex")));
  if (spec.crlUrl) extensions.push(crlDistributionPointsExtension(spec.crlUrl));
  if (spec.authorityInfoAccess) extensions.push(authorityInfoAccessExtension(spec.authorityInfoAccess));
  const signer: SigningKey = { algorithm: signatureAlgorithmFor(spec.signingKey), privateKey: spec.signingKey, signer: spec.signer };
  return signFields(spec, spec.issuer, extensions, signer);
}

/** What an issuing CA contributes to every certificate, encoded once. */
interface IssuerTemplate {
  /** What the template was made from: reused only while the IssuerRef still holds exactly these. */
  certificate: X509Certificate;
  signer: SigningKey;
  name: Uint8Array;
  notAfter: Date;
  authorityKeyIdentifier: Uint8Array;
  crl: { url: string; extension: Uint8Array } | undefined;
  aia: { key: string; extension: Uint8Array } | undefined;
}

/** Keyed by the IssuerRef object, so a template lives as long as its CertificateAuthority (or other holder). */
const issuerTemplates = new WeakMap<IssuerRef, IssuerTemplate>();

function templateOf(issuer: IssuerRef): IssuerTemplate {
  const cached = issuerTemplates.get(issuer);
  // IssuerRef's fields are plain properties: a caller replacing one must not get the old issuer's bytes.
  if (cached && cached.certificate === issuer.certificate && cached.signer.privateKey === issuer.keys.privateKey && cached.signer.signer === issuer.signer) {
    return cached;
  }
  const template: IssuerTemplate = {
    certificate: issuer.certificate,
    signer: { algorithm: signatureAlgorithmFor(issuer.keys.privateKey), privateKey: issuer.keys.privateKey, signer: issuer.signer },
    name: certificateSubjectDer(new Uint8Array(issuer.certificate.rawData)),
    notAfter: issuer.certificate.notAfter,
    authorityKeyIdentifier: authorityKeyIdentifierExtension(Buffer.from(keyIdentifierOf(issuer.certificate), "hex")),
    crl: undefined,
    aia: undefined,
  };
  issuerTemplates.set(issuer, template);
  return template;
}

function crlExtensionOf(template: IssuerTemplate, url: string): Uint8Array {
  // A CA publishes one CRL URL; remember the last one rather than keep a map no one would grow.
  if (template.crl?.url !== url) template.crl = { url, extension: crlDistributionPointsExtension(url) };
  return template.crl.extension;
}

function aiaExtensionOf(template: IssuerTemplate, access: AuthorityInfoAccess): Uint8Array {
  const key = JSON.stringify([access.ocsp, access.caIssuers]);
  if (template.aia?.key !== key) template.aia = { key, extension: authorityInfoAccessExtension(access) };
  return template.aia.extension;
}

/**
 * basicConstraints CA:FALSE + keyUsage + extKeyUsage of an end-entity
 * certificate, by usage set (in practice: per profile and key family).
 * Bounded because callers may pass arbitrary OIDs; profiles are a handful.
 */
const endEntityExtensions = new Map<string, Uint8Array>();
const MAX_USAGE_SETS = 64;

function endEntityExtensionsFor(keyUsage: readonly string[], extendedKeyUsage: readonly string[]): Uint8Array {
  // JSON keeps ["a,b"] and ["a","b"] apart, so a cached entry is only ever reused for the very lists it was validated for.
  const key = JSON.stringify([keyUsage, extendedKeyUsage]);
  let bytes = endEntityExtensions.get(key);
  if (!bytes) {
    const parts = [basicConstraintsExtension(), keyUsageExtension(keyUsage, false)];
    if (extendedKeyUsage.length > 0) parts.push(extendedKeyUsageExtension(extendedKeyUsage));
    bytes = concat(parts);
    if (endEntityExtensions.size >= MAX_USAGE_SETS) endEntityExtensions.clear();
    endEntityExtensions.set(key, bytes);
  }
  return bytes;
}

/**
 * An end-entity certificate (CA:FALSE) signed by `spec.issuer`; leaves and the
 * KMS's own TLS/signing/encryption certificates use this. Async throughout, so
 * that a refusal is a rejected promise, never a synchronous throw.
 */
export async function issueCertificate(spec: CertificateSpec): Promise<Uint8Array> {
  const issuer = templateOf(spec.issuer);
  if (spec.notAfter.getTime() > issuer.notAfter.getTime()) {
    throw badInput("VALIDITY_EXCEEDS_CA", `The certificate would expire after its issuing CA (${issuer.notAfter.toISOString()}).`);
  }
  const extensions = [endEntityExtensionsFor(spec.keyUsage, spec.extendedKeyUsage)];
  if (spec.subjectAltNames && spec.subjectAltNames.length > 0) extensions.push(subjectAltNameExtension(spec.subjectAltNames));
  extensions.push(subjectKeyIdentifierExtension(subjectKeyIdentifier(spec.spki)));
  extensions.push(issuer.authorityKeyIdentifier);
  if (spec.crlUrl) extensions.push(crlExtensionOf(issuer, spec.crlUrl));
  if (spec.authorityInfoAccess) extensions.push(aiaExtensionOf(issuer, spec.authorityInfoAccess));
  return signFields(spec, issuer.name, extensions, issuer.signer);
}


/**
 * The certificate a profile makes of a participant's key: checks key and
 * validity against the profile, and drops the encipherment usages for EC keys.
 * Separate from issueLeafCertificate so the library oracle can be given the very same spec.
 */
export function leafCertificateSpec(spec: LeafSpec): CertificateSpec {
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
  const keyUsage = grantedKeyUsage(spec.profile, key.family);
  return {
    subject: spec.subjectDer,
    spki: spec.spki,
    serialHex: spec.serialHex,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    keyUsage,
    extendedKeyUsage: spec.profile.extendedKeyUsage,
    crlUrl: spec.crlUrl,
    authorityInfoAccess: spec.authorityInfoAccess,
    issuer: spec.issuer,
    ...(spec.lint ? { lint: { role: "leaf" as const, profile: spec.profile } } : {}),
  };
}

/** A participant's certificate: the profile decides the extensions; only subject and key come from the CSR. */
export async function issueLeafCertificate(spec: LeafSpec): Promise<Uint8Array> {
  return issueCertificate(leafCertificateSpec(spec));
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
      const encoded = PRINTABLE_STRING.test(value) ? tlv(0x13, Buffer.from(value, "latin1")) : tlv(0x0c, Buffer.from(value, "utf8"));
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
