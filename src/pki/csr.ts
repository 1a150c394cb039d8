/**
 * PKCS#10 parsing and validation against a certificate profile.
 *
 * Checks run in a fixed order, so that a request with several faults always
 * gets the same answer: size/PEM/DER -> signature algorithm -> key algorithm
 * and strength -> signature (proof of possession) -> subject. The signature
 * algorithm is judged before verifying, so that an MD5/SHA-1 signature is
 * never computed on at all. The encodings of the signature and its
 * AlgorithmIdentifier are held to what `openssl req -verify` accepts. The
 * extension requests are judged (csr-extensions.ts: CA requests and
 * unhonoured critical extensions are refused, other unhonoured ones
 * reported); other attributes (challengePassword) are ignored. The subject
 * is checked and re-encoded by subject.ts.
 */
import { createPublicKey, verify as verifySignature, constants as cryptoConstants, type KeyObject } from "node:crypto";
import { AsnConvert } from "@peculiar/asn1-schema";
import { CertificationRequest } from "@peculiar/asn1-csr";
import { RsaSaPssParams } from "@peculiar/asn1-rsa";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { badInput, DomainError } from "../kernel/errors.js";
import { children, content, decodeOid, raw, readTlv, DerError, type Tlv } from "./der.js";
import { rfc4514 } from "./name.js";
import { grantedKeyUsage, type CertificateProfile } from "./profiles.js";
import { judgeRequestedExtensions, requestedExtensions } from "./csr-extensions.js";
import { validateSubject } from "./subject.js";
import { analyzeKey, type KeyInfo } from "./spki.js";
import { canonicalKey, KeyEncodingError, type CanonicalKey } from "./key-identity.js";
import { derToPem } from "./pem.js";

export interface ParsedCsr {
  der: Uint8Array;
  /** Canonical PEM of `der` (label CERTIFICATE REQUEST, 64 columns). */
  pem: string;
  /** RFC 4514, e.g. "CN=Acme Client,O=Acme Bank,C=GB". */
  subject: string;
  commonName: string;
  /** "RSA-2048" | "EC-P256" ... */
  keyAlgorithm: string;
  /** sha256 hex lowercase of the canonical SPKI DER (key-identity.ts): the same for every encoding of the key. */
  publicKeyFingerprint: string;
  /** The canonical SPKI, which the certificate carries (not necessarily the bytes in the CSR). */
  spki: Uint8Array;
  /** The subject Name DER the certificate carries: re-encoded from the validated attributes (not the CSR's bytes). */
  subjectDer: Uint8Array;
  /** OIDs of the non-critical requested extensions the profile does not grant, in request order. */
  ignoredExtensions: string[];
}

export const MAX_CSR_PEM_BYTES = 64 * 1024;
const RSA_EXPONENT = 65537n;
const MIN_RSA_BITS = 2048;

type Hash = "sha256" | "sha384" | "sha512";
type SignatureScheme =
  | { kind: "weak"; name: string }
  | { kind: "rsa-pkcs1"; hash: Hash; name: string }
  | { kind: "rsa-pss"; hash: Hash; saltLength: number; name: string }
  | { kind: "ecdsa"; hash: Hash; name: string }
  | { kind: "unsupported"; name: string };

/** Signature algorithms by OID. Weak ones are named so the message can say what to change. */
const SIGNATURE_ALGORITHMS: Record<string, SignatureScheme> = {
  "1.2.840.113549.1.1.2": { kind: "weak", name: "md2WithRSAEncryption" },
  "1.2.840.113549.1.1.3": { kind: "weak", name: "md4WithRSAEncryption" },
  "1.2.840.113549.1.1.4": { kind: "weak", name: "md5WithRSAEncryption" },
  "1.2.840.113549.1.1.5": { kind: "weak", name: "sha1WithRSAEncryption" },
  "1.3.14.3.2.29": { kind: "weak", name: "sha1WithRSASignature" },
  "1.2.840.113549.1.1.14": { kind: "weak", name: "sha224WithRSAEncryption" },
  "1.2.840.113549.1.1.11": { kind: "rsa-pkcs1", hash: "sha256", name: "sha256WithRSAEncryption" },
  "1.2.840.113549.1.1.12": { kind: "rsa-pkcs1", hash: "sha384", name: "sha384WithRSAEncryption" },
  "1.2.840.113549.1.1.13": { kind: "rsa-pkcs1", hash: "sha512", name: "sha512WithRSAEncryption" },
  "1.2.840.10045.4.1": { kind: "weak", name: "ecdsa-with-SHA1" },
  "1.2.840.10045.4.3.1": { kind: "weak", name: "ecdsa-with-SHA224" },
  "1.2.840.10045.4.3.2": { kind: "ecdsa", hash: "sha256", name: "ecdsa-with-SHA256" },
  "1.2.840.10045.4.3.3": { kind: "ecdsa", hash: "sha384", name: "ecdsa-with-SHA384" },
  "1.2.840.10045.4.3.4": { kind: "ecdsa", hash: "sha512", name: "ecdsa-with-SHA512" },
  "1.2.840.10040.4.3": { kind: "weak", name: "dsa-with-SHA1" },
  "2.16.840.1.101.3.4.3.1": { kind: "weak", name: "dsa-with-SHA224" },
};
const OID_RSASSA_PSS = "1.2.840.113549.1.1.10";
const OID_MGF1 = "1.2.840.113549.1.1.8";
const HASH_OIDS: Record<string, Hash | "weak"> = {
  "1.3.14.3.2.26": "weak", // SHA-1
  "2.16.840.1.101.3.4.2.4": "weak", // SHA-224
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;
const CSR_LABELS = new Set(["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"]);

const invalid = (message: string) => badInput("INVALID_CSR", message);

function decodePem(pem: string): Uint8Array {
  if (Buffer.byteLength(pem, "utf8") > MAX_CSR_PEM_BYTES) {
    throw invalid(`The CSR is larger than ${MAX_CSR_PEM_BYTES / 1024} KB; a certificate request is a few kilobytes at most.`);
  }
  const begins = pem.match(/-----BEGIN /g)?.length ?? 0;
  if (begins === 0) throw invalid("The CSR is not PEM: expected a -----BEGIN CERTIFICATE REQUEST----- block.");
  if (begins > 1) throw invalid("The CSR text contains several PEM blocks; submit exactly one certificate request.");
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  const block = blocks[0];
  if (!block) throw invalid("The CSR PEM block is not terminated by a matching -----END----- line.");
  const [whole, label, body, endLabel] = block;
  if (label !== endLabel) throw invalid(`The CSR PEM block begins with "${label}" but ends with "${endLabel}".`);
  if (!CSR_LABELS.has(label!)) {
    throw invalid(`The PEM block is a "${label}", not a "CERTIFICATE REQUEST".`);
  }
  const outside = pem.slice(0, block.index) + pem.slice(block.index! + whole!.length);
  if (outside.trim() !== "") throw invalid("The CSR text contains data outside its PEM block.");
  const base64 = body!.replace(/[\r\n\t ]/g, "");
  // Strict base64: Buffer.from(..., "base64") would silently skip junk characters.
  if (base64.length === 0 || base64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) {
    throw invalid("The CSR PEM body is not valid base64 (PEM headers and stray characters are not accepted).");
  }
  return new Uint8Array(Buffer.from(base64, "base64"));
}

interface CsrParts {
  info: Tlv;
  subject: Tlv;
  spki: Tlv;
  /** The [0] attributes, when present. */
  attributes: Tlv | undefined;
  /** The signatureAlgorithm AlgorithmIdentifier's children: the OID and any parameters. */
  algorithmParts: Tlv[];
  signatureAlgorithm: string;
  asn: CertificationRequest;
}

function splitDer(der: Uint8Array): CsrParts {
  try {
    const outer = readTlv(der, 0);
    if (outer.end !== der.length) {
      throw invalid(`The CSR has ${der.length - outer.end} bytes of trailing data after its DER encoding.`);
    }
    if (outer.tag !== 0x30) throw new DerError("not a SEQUENCE");
    const top = children(der, outer);
    if (top.length !== 3 || top[0]!.tag !== 0x30 || top[1]!.tag !== 0x30 || top[2]!.tag !== 0x03) {
      throw new DerError("not signed info, algorithm and signature");
    }
    const info = children(der, top[0]!);
    if (info.length < 3 || info.length > 4 || info[0]!.tag !== 0x02 || info[1]!.tag !== 0x30 || info[2]!.tag !== 0x30) {
      throw new DerError("CertificationRequestInfo is version, subject, key, attributes");
    }
    const version = content(der, info[0]!);
    if (version.length !== 1 || version[0] !== 0) throw invalid("The CSR is not PKCS#10 version 1 (version field must be 0).");
    if (info[3] && info[3].tag !== 0xa0) throw new DerError("attributes are [0]");
    const algorithm = children(der, top[1]!);
    if (algorithm.length < 1 || algorithm[0]!.tag !== 0x06) throw new DerError("bad signature algorithm");
    if (algorithm.length > 2) {
      throw invalid("The CSR's signature AlgorithmIdentifier has more than one parameters field; it is not a valid AlgorithmIdentifier.");
    }
    const signature = content(der, top[2]!);
    if (signature.length === 0 || signature[0] !== 0) {
      throw invalid("The CSR's signature BIT STRING has unused bits; a signature is a whole number of octets.");
    }
    const asn = AsnConvert.parse(der, CertificationRequest);
    return {
      info: top[0]!,
      subject: info[1]!,
      spki: info[2]!,
      attributes: info[3],
      algorithmParts: algorithm,
      signatureAlgorithm: decodeOid(content(der, algorithm[0]!)),
      asn,
    };
  } catch (e) {
    if (e instanceof DomainError) throw e;
    throw invalid("The CSR is not a valid PKCS#10 certificate request (its DER encoding could not be read).");
  }
}

const NULL_PARAMETERS = Uint8Array.of(0x05, 0x00);

/**
 * The parameters field as RFC 5758 / RFC 4055 define it, as OpenSSL checks
 * it: ECDSA has none, RSA PKCS#1 v1.5 NULL (or none), RSASSA-PSS a SEQUENCE.
 */
function checkAlgorithmParameters(der: Uint8Array, parts: CsrParts, scheme: SignatureScheme): void {
  const parameters = parts.algorithmParts[1];
  const bad = () => invalid(`The CSR's ${scheme.name} AlgorithmIdentifier carries parameters that algorithm does not take.`);
  if (scheme.kind === "ecdsa" && parameters) throw bad();
  if (scheme.kind === "rsa-pkcs1" && parameters && !Buffer.from(raw(der, parameters)).equals(NULL_PARAMETERS)) throw bad();
  if (scheme.kind === "rsa-pss" && parameters?.tag !== 0x30) throw bad();
}

function signatureScheme(parts: CsrParts): SignatureScheme {
  const oid = parts.signatureAlgorithm;
  if (oid === OID_RSASSA_PSS) {
    const paramsDer = parts.asn.signatureAlgorithm.parameters;
    if (!paramsDer) return { kind: "weak", name: "RSASSA-PSS with default parameters (SHA-1)" };
    let params: RsaSaPssParams;
    try {
      params = AsnConvert.parse(paramsDer, RsaSaPssParams);
    } catch {
      throw invalid("The CSR's RSASSA-PSS signature parameters could not be read.");
    }
    const hash = HASH_OIDS[params.hashAlgorithm.algorithm];
    if (!hash) return { kind: "unsupported", name: `RSASSA-PSS with hash ${params.hashAlgorithm.algorithm}` };
    if (hash === "weak") return { kind: "weak", name: "RSASSA-PSS with SHA-1 or SHA-224" };
    let mgfHash: Hash | "weak" | undefined;
    if (params.maskGenAlgorithm.algorithm === OID_MGF1 && params.maskGenAlgorithm.parameters) {
      try {
        mgfHash = HASH_OIDS[AsnConvert.parse(params.maskGenAlgorithm.parameters, AlgorithmIdentifier).algorithm];
      } catch {
        mgfHash = undefined;
      }
    }
    if (mgfHash !== hash) return { kind: "unsupported", name: "RSASSA-PSS with an MGF1 hash different from the message hash" };
    // RFC 4055 3.1: trailerField is 1 (0xBC); the salt is a non-negative length (OpenSSL refuses -1 and other negatives).
    if (params.trailerField !== 1) throw invalid(`The CSR's RSASSA-PSS trailerField is ${params.trailerField}; only 1 is defined.`);
    if (!Number.isSafeInteger(params.saltLength) || params.saltLength < 0) {
      throw invalid(`The CSR's RSASSA-PSS saltLength is ${params.saltLength}; it must be a non-negative number of octets.`);
    }
    return { kind: "rsa-pss", hash, saltLength: params.saltLength, name: `RSASSA-PSS with ${hash.toUpperCase()}` };
  }
  return SIGNATURE_ALGORITHMS[oid] ?? { kind: "unsupported", name: oid };
}

function checkKey(spki: Uint8Array, profile: CertificateProfile): { info: KeyInfo; key: KeyObject; canonical: CanonicalKey } {
  let info: KeyInfo;
  try {
    info = analyzeKey(spki);
  } catch {
    throw invalid("The CSR's public key could not be read.");
  }
  if (info.family === "RSA") {
    if (info.bits < MIN_RSA_BITS) {
      throw badInput("WEAK_KEY", `The RSA key is ${info.bits} bits; at least ${MIN_RSA_BITS} bits are required.`);
    }
    if (info.exponent !== RSA_EXPONENT) {
      throw badInput("WEAK_KEY", `The RSA public exponent is ${info.exponent}; only 65537 is accepted.`);
    }
  }
  if (!profile.allowedKeyAlgorithms.includes(info.label)) {
    throw badInput(
      "UNSUPPORTED_KEY_ALGORITHM",
      `The key algorithm ${info.label} is not accepted for ${profile.kind} certificates; use one of ${profile.allowedKeyAlgorithms.join(", ")}.`,
    );
  }
  let canonical: CanonicalKey;
  try {
    canonical = canonicalKey(spki);
  } catch (e) {
    if (e instanceof KeyEncodingError) throw invalid(`The CSR's public key is refused: ${e.message}.`);
    throw e;
  }
  try {
    // Also validates the key material (e.g. that an EC point lies on its curve).
    return { info, canonical, key: createPublicKey({ key: Buffer.from(canonical.spki), format: "der", type: "spki" }) };
  } catch {
    throw invalid("The CSR's public key is malformed (it could not be loaded).");
  }
}

function checkSignature(der: Uint8Array, parts: CsrParts, scheme: SignatureScheme, key: { info: KeyInfo; key: KeyObject }) {
  const signed = raw(der, parts.info);
  const signature = new Uint8Array(parts.asn.signature);
  const family = key.info.family;
  let ok = false;
  if (scheme.kind === "unsupported") {
    throw badInput(
      "WEAK_SIGNATURE_ALGORITHM",
      `The CSR is signed with ${scheme.name}, which is not accepted; sign it with SHA-256 or stronger (RSA PKCS#1 v1.5, RSASSA-PSS or ECDSA).`,
    );
  }
  const matches = (scheme.kind === "ecdsa" && family === "EC") || (scheme.kind !== "ecdsa" && family === "RSA");
  if (matches) {
    try {
      if (scheme.kind === "rsa-pss") {
        ok = verifySignature(
          scheme.hash,
          signed,
          { key: key.key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: scheme.saltLength },
          signature,
        );
      } else if (scheme.kind === "rsa-pkcs1") {
        ok = verifySignature(scheme.hash, signed, { key: key.key, padding: cryptoConstants.RSA_PKCS1_PADDING }, signature);
      } else if (scheme.kind === "ecdsa") {
        ok = verifySignature(scheme.hash, signed, { key: key.key, dsaEncoding: "der" }, signature);
      }
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    throw badInput(
      "CSR_SIGNATURE_INVALID",
      matches
        ? "The CSR's signature does not verify with its own public key (proof of possession failed); the request was altered or signed with another key."
        : `The CSR is signed with ${scheme.name}, which does not match its ${key.info.label} key.`,
    );
  }
}

export async function parseCsr(
  pem: string,
  profile: CertificateProfile,
  expected: { organizationName: string; country: string },
): Promise<ParsedCsr> {
  const der = decodePem(pem);
  const parts = splitDer(der);
  const scheme = signatureScheme(parts);
  if (scheme.kind === "weak") {
    throw badInput(
      "WEAK_SIGNATURE_ALGORITHM",
      `The CSR is signed with ${scheme.name}; SHA-1, MD5 and other hashes weaker than SHA-256 are refused. Sign it with SHA-256 or stronger.`,
    );
  }
  checkAlgorithmParameters(der, parts, scheme);
  const spki = raw(der, parts.spki);
  const key = checkKey(spki, profile);
  checkSignature(der, parts, scheme, key);
  const subject = validateSubject(raw(der, parts.subject), profile, expected);
  const ignoredExtensions = judgeRequestedExtensions(requestedExtensions(der, parts.attributes), profile, grantedKeyUsage(profile, key.info.family));
  const commonName = subject.attributes.find(([name]) => name === "CN")?.[1] ?? "";
  // Copies, so that callers holding the result don't pin (or see changes to) a larger buffer.
  const derCopy = new Uint8Array(der);
  return {
    der: derCopy,
    pem: derToPem(derCopy, "CERTIFICATE REQUEST"),
    subject: rfc4514(subject.der),
    commonName,
    keyAlgorithm: key.info.label,
    publicKeyFingerprint: key.canonical.fingerprint,
    spki: key.canonical.spki,
    subjectDer: subject.der,
    ignoredExtensions,
  };
}
