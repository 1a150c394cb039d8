/**
 * CMS (RFC 5652) for the KMS's own certificates: attached SignedData with
 * SHA-256, and decryption of EnvelopedData addressed to an RSA certificate
 * (KeyTransRecipientInfo, RSA PKCS#1 v1.5 or OAEP key transport, AES-CBC
 * content), as `openssl cms -sign` / `openssl cms -encrypt -aes256` make them.
 *
 * The SignedData is written with the small DER writer rather than the schema
 * classes: signed attributes are signed as a SET OF but stored as [0]
 * IMPLICIT, and the signer's issuer Name and serial are copied from the
 * certificate's own bytes; both are simpler to get exactly right on bytes.
 */
import {
  KeyObject,
  constants as cryptoConstants,
  createDecipheriv,
  createHash,
  privateDecrypt,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { AsnConvert, OctetString } from "@peculiar/asn1-schema";
import { AlgorithmIdentifier } from "@peculiar/asn1-x509";
import { ContentInfo, EnvelopedData, id_envelopedData, type KeyTransRecipientInfo } from "@peculiar/asn1-cms";
import { RsaEsOaepParams } from "@peculiar/asn1-rsa";
import { badInput, DomainError } from "../kernel/errors.js";
import { signatureAlgorithmFor } from "./algorithms.js";
import {
  asBufferSource,
  certificateFields,
  children,
  concat,
  content,
  ecdsaSignatureToDer,
  encodeOctetString,
  encodeOid,
  encodeTime,
  readTlv,
  sequence,
  tlv,
  type CertificateFields,
} from "./der.js";
import type { Signer } from "./keystore/port.js";
import { subjectKeyIdentifier } from "./spki.js";

const OID_DATA = "1.2.840.113549.1.7.1";
const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";
const OID_CONTENT_TYPE = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4";
const OID_SIGNING_TIME = "1.2.840.113549.1.9.5";
const OID_SHA256 = "2.16.840.1.101.3.4.2.1";
const OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1";
const OID_RSAES_OAEP = "1.2.840.113549.1.1.7";
const OID_MGF1 = "1.2.840.113549.1.1.8";

const HASHES: Record<string, "SHA-1" | "SHA-256" | "SHA-384" | "SHA-512"> = {
  "1.3.14.3.2.26": "SHA-1",
  "2.16.840.1.101.3.4.2.1": "SHA-256",
  "2.16.840.1.101.3.4.2.2": "SHA-384",
  "2.16.840.1.101.3.4.2.3": "SHA-512",
};

const CONTENT_CIPHERS: Record<string, { cipher: string; keyLength: number }> = {
  "2.16.840.1.101.3.4.1.2": { cipher: "aes-128-cbc", keyLength: 16 },
  "2.16.840.1.101.3.4.1.22": { cipher: "aes-192-cbc", keyLength: 24 },
  "2.16.840.1.101.3.4.1.42": { cipher: "aes-256-cbc", keyLength: 32 },
};

type CertificateParts = Pick<CertificateFields, "issuer" | "serial" | "spki">;

/** issuer Name, serialNumber INTEGER and SPKI TLVs, as bytes, from a certificate's DER. */
const certificateParts = (der: Uint8Array): CertificateParts => certificateFields(der);

function attribute(oid: string, value: Uint8Array): Uint8Array {
  return sequence(encodeOid(oid), tlv(0x31, value));
}


function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export interface SignCmsOptions {
  /** Adds a signingTime attribute (the caller's clock; this module reads none). */
  signingTime?: Date;
  /** Further certificates to embed (e.g. the issuing CA), after the signer's. */
  certificates?: Uint8Array[];
}

/**
 * Attached CMS SignedData over `data` with SHA-256, signed by the private key
 * of `certificateDer` (ECDSA P-256/P-384 or RSA PKCS#1 v1.5), through the key
 * store that holds it (`signer`). The signer is identified by issuer and
 * serial number, and its certificate is embedded.
 */
export async function signCms(
  data: Uint8Array,
  certificateDer: Uint8Array,
  keys: CryptoKeyPair,
  signer: Signer,
  options: SignCmsOptions = {},
): Promise<Uint8Array> {
  const cert = certificateParts(certificateDer);
  const digest = createHash("sha256").update(data).digest();
  const attributes = [
    attribute(OID_CONTENT_TYPE, encodeOid(OID_DATA)),
    attribute(OID_MESSAGE_DIGEST, encodeOctetString(digest)),
    ...(options.signingTime ? [attribute(OID_SIGNING_TIME, encodeTime(options.signingTime))] : []),
  ].sort(compareBytes); // DER: the elements of a SET OF in ascending order of their encodings
  const signedAttributes = tlv(0x31, ...attributes);

  // SHA-256 for every key: the signer's digestAlgorithm is SHA-256 and the signature algorithm must match it.
  const algorithm = signatureAlgorithmFor(keys.privateKey, "SHA-256");
  const raw = await signer.sign(keys.privateKey, algorithm.params, asBufferSource(signedAttributes));
  const signature = algorithm.ecdsaSize > 0 ? ecdsaSignatureToDer(raw, algorithm.ecdsaSize) : raw;
  const signatureAlgorithm = algorithm.der;

  const sha256 = sequence(encodeOid(OID_SHA256));
  const signerInfo = sequence(
    tlv(0x02, Uint8Array.of(1)), // version 1: sid is issuerAndSerialNumber
    sequence(cert.issuer, cert.serial),
    sha256,
    tlv(0xa0, ...attributes), // [0] IMPLICIT SET OF Attribute
    signatureAlgorithm,
    encodeOctetString(signature),
  );
  const signedData = sequence(
    tlv(0x02, Uint8Array.of(1)), // version 1: id-data content, no v2+ structures
    tlv(0x31, sha256),
    sequence(encodeOid(OID_DATA), tlv(0xa0, encodeOctetString(data))),
    tlv(0xa0, certificateDer, ...(options.certificates ?? [])), // [0] IMPLICIT CertificateSet
    tlv(0x31, signerInfo),
  );
  return sequence(encodeOid(OID_SIGNED_DATA), tlv(0xa0, signedData));
}

// ---------------------------------------------------------------------------
// EnvelopedData decryption
// ---------------------------------------------------------------------------

type KeyTransport = { padding: "pkcs1" } | { padding: "oaep"; hash: "SHA-1" | "SHA-256" | "SHA-384" | "SHA-512" };

function keyTransportOf(ktri: KeyTransRecipientInfo): KeyTransport {
  const alg = ktri.keyEncryptionAlgorithm;
  if (alg.algorithm === OID_RSA_ENCRYPTION) return { padding: "pkcs1" };
  if (alg.algorithm === OID_RSAES_OAEP) {
    // RFC 8017 defaults: SHA-1 and MGF1 with SHA-1, empty label.
    const params = alg.parameters ? AsnConvert.parse(alg.parameters, RsaEsOaepParams) : new RsaEsOaepParams();
    const hash = HASHES[params.hashAlgorithm.algorithm];
    let mgfHash: string | undefined;
    if (params.maskGenAlgorithm.algorithm === OID_MGF1 && params.maskGenAlgorithm.parameters) {
      mgfHash = HASHES[AsnConvert.parse(params.maskGenAlgorithm.parameters, AlgorithmIdentifier).algorithm];
    }
    // Read pSource from the encoding itself: when it is absent, the schema class fills in a
    // non-empty default (SHA-1 of ""), while RFC 8017's default is the empty label.
    let pSourceEmpty = true;
    if (alg.parameters) {
      const der = new Uint8Array(alg.parameters);
      const pSource = children(der, readTlv(der, 0)).find((t) => t.tag === 0xa2);
      if (pSource) {
        const algorithm = AsnConvert.parse(content(der, pSource), AlgorithmIdentifier);
        pSourceEmpty = !algorithm.parameters || AsnConvert.parse(algorithm.parameters, OctetString).byteLength === 0;
      }
    }
    if (!hash || mgfHash !== hash || !pSourceEmpty) {
      throw badInput("UNSUPPORTED_CMS_ALGORITHM", "The message uses RSA-OAEP parameters that are not supported (MGF1 hash must equal the OAEP hash, no label).");
    }
    return { padding: "oaep", hash };
  }
  throw badInput("UNSUPPORTED_CMS_ALGORITHM", `The message's key transport algorithm ${alg.algorithm} is not supported; use RSA.`);
}

/**
 * PKCS#1 v1.5 decoding of a raw RSA result with implicit rejection (RFC 3218
 * 2.3.2): a malformed block yields a random key of the expected length instead
 * of an error, so a caller learns nothing about why decryption then fails.
 */
function unpadPkcs1(block: Uint8Array, keyLength: number, fallback: Uint8Array): Uint8Array {
  const k = block.length;
  let good = (block[0] === 0x00 ? 1 : 0) & (block[1] === 0x02 ? 1 : 0);
  // The separator must be exactly at k - keyLength - 1, preceded by at least 8 non-zero padding octets.
  const separator = k - keyLength - 1;
  if (separator < 10) return fallback;
  let nonZero = 1;
  for (let i = 2; i < separator; i++) nonZero &= block[i] !== 0 ? 1 : 0;
  good &= nonZero & (block[separator] === 0 ? 1 : 0);
  const candidate = block.subarray(separator + 1);
  // Select without branching on `good` per byte.
  const out = new Uint8Array(keyLength);
  const mask = -good & 0xff;
  for (let i = 0; i < keyLength; i++) out[i] = (candidate[i]! & mask) | (fallback[i]! & ~mask & 0xff);
  return out;
}

async function decryptContentKey(
  ktri: KeyTransRecipientInfo,
  keyLength: number,
  keys: CryptoKeyPair,
  crypto: Crypto,
): Promise<Uint8Array> {
  const transport = keyTransportOf(ktri);
  const encryptedKey = new Uint8Array(ktri.encryptedKey.buffer);
  const fallback = randomBytes(keyLength);
  let keyObject: KeyObject | undefined;
  try {
    // Node WebCrypto keys (FileKeyStore) expose their KeyObject; token keys throw here.
    keyObject = KeyObject.from(keys.privateKey);
  } catch {
    keyObject = undefined;
  }
  try {
    if (keyObject) {
      if (transport.padding === "oaep") {
        return new Uint8Array(
          privateDecrypt({ key: keyObject, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: transport.hash.replace("-", "").toLowerCase() }, encryptedKey),
        );
      }
      // Node 20 refuses RSA_PKCS1_PADDING for private decryption (CVE-2023-46809, Marvin):
      // do the raw RSA operation and decode the block here, with implicit rejection.
      const block = privateDecrypt({ key: keyObject, padding: cryptoConstants.RSA_NO_PADDING }, encryptedKey);
      return unpadPkcs1(block, keyLength, fallback);
    }
    // A token key: the key store's WebCrypto runs the mechanism on the token (RSAES-PKCS1-v1_5 or RSA-OAEP).
    const algorithm = transport.padding === "oaep" ? { name: "RSA-OAEP", hash: transport.hash } : { name: "RSAES-PKCS1-v1_5" };
    const cek = new Uint8Array(await crypto.subtle.decrypt(algorithm, keys.privateKey, asBufferSource(encryptedKey)));
    return cek.length === keyLength ? cek : fallback;
  } catch {
    if (transport.padding === "pkcs1") return fallback; // same outcome as a bad block: no padding oracle
    throw badInput("CMS_DECRYPTION_FAILED", "The message could not be decrypted with this certificate's key.");
  }
}

function recipientMatches(ktri: KeyTransRecipientInfo, cert: CertificateParts): boolean {
  const rid = ktri.rid;
  if (rid.issuerAndSerialNumber) {
    const issuer = new Uint8Array(AsnConvert.serialize(rid.issuerAndSerialNumber.issuer));
    const serial = new Uint8Array(rid.issuerAndSerialNumber.serialNumber);
    const certSerialTlv = readTlv(cert.serial, 0);
    return compareBytes(issuer, cert.issuer) === 0 && compareBytes(serial, content(cert.serial, certSerialTlv)) === 0;
  }
  if (rid.subjectKeyIdentifier) {
    const ski = subjectKeyIdentifier(cert.spki);
    const want = new Uint8Array(rid.subjectKeyIdentifier.buffer);
    return want.length === ski.length && timingSafeEqual(want, ski);
  }
  return false;
}

/** Decrypts EnvelopedData addressed (KeyTransRecipientInfo) to `certificateDer`, whose RSA private key is `keys.privateKey`. */
export async function decryptCms(envelopedDer: Uint8Array, certificateDer: Uint8Array, keys: CryptoKeyPair, crypto: Crypto): Promise<Uint8Array> {
  let enveloped: EnvelopedData;
  try {
    const outer = readTlv(envelopedDer, 0);
    if (outer.end !== envelopedDer.length) throw new Error("trailing data");
    const info = AsnConvert.parse(envelopedDer, ContentInfo);
    if (info.contentType !== id_envelopedData) {
      throw badInput("INVALID_CMS", "The message is not CMS EnvelopedData.");
    }
    enveloped = AsnConvert.parse(info.content, EnvelopedData);
  } catch (e) {
    if (e instanceof DomainError) throw e;
    throw badInput("INVALID_CMS", "The message is not valid DER-encoded CMS.");
  }
  const cert = certificateParts(certificateDer);
  const ktri = enveloped.recipientInfos.map((r) => r.ktri).find((k): k is KeyTransRecipientInfo => !!k && recipientMatches(k, cert));
  if (!ktri) throw badInput("CMS_RECIPIENT_NOT_FOUND", "The message is not encrypted to this certificate.");

  const eci = enveloped.encryptedContentInfo;
  const cipher = CONTENT_CIPHERS[eci.contentEncryptionAlgorithm.algorithm];
  if (!cipher) {
    throw badInput("UNSUPPORTED_CMS_ALGORITHM", `The content encryption algorithm ${eci.contentEncryptionAlgorithm.algorithm} is not supported; use AES-CBC.`);
  }
  const ivParams = eci.contentEncryptionAlgorithm.parameters;
  const iv = ivParams ? new Uint8Array(AsnConvert.parse(ivParams, OctetString).buffer) : new Uint8Array();
  if (iv.length !== 16) throw badInput("INVALID_CMS", "The message's AES-CBC IV is missing or malformed.");
  const encrypted = eci.encryptedContent?.value
    ? new Uint8Array(eci.encryptedContent.value.buffer)
    : concat((eci.encryptedContent?.constructedValue ?? []).map((o) => new Uint8Array(o.buffer)));

  const cek = await decryptContentKey(ktri, cipher.keyLength, keys, crypto);
  try {
    const decipher = createDecipheriv(cipher.cipher, cek, iv);
    return new Uint8Array(Buffer.concat([decipher.update(encrypted), decipher.final()]));
  } catch {
    throw badInput("CMS_DECRYPTION_FAILED", "The message could not be decrypted with this certificate's key.");
  } finally {
    cek.fill(0);
  }
}
