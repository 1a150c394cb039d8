/**
 * The one signature-algorithm table: for a signing key, the
 * AlgorithmIdentifier (OID and parameters) written into certificates, CRLs,
 * OCSP responses and CMS SignerInfos, the WebCrypto parameters KeyStore.sign
 * is called with, and the hash both imply. Certificates, CRLs and OCSP use
 * the key's own hash (ECDSA: the curve's, P-256 SHA-256 and P-384 SHA-384,
 * RFC 5758; RSA: the hash WebCrypto bound to the key). CMS asks for SHA-256,
 * its digestAlgorithm, which the signature algorithm must match.
 */
import { encodeNull, encodeOid, sequence } from "./der.js";

export type HashName = "SHA-256" | "SHA-384" | "SHA-512";

export interface SignatureAlgorithm {
  /** What to hand to KeyStore.sign. */
  params: EcdsaParams | Algorithm;
  /** The digest the signature is made over. */
  hash: HashName;
  /** The AlgorithmIdentifier TLV (e.g. TBSCertificate.signature and Certificate.signatureAlgorithm). */
  der: Uint8Array;
  /** Octets per ECDSA coordinate (WebCrypto's r||s is converted to DER); 0 for RSA (used as is). */
  ecdsaSize: number;
}

/** Per curve: its default hash and coordinate size. */
const CURVES: Record<string, { hash: HashName; size: number }> = {
  "P-256": { hash: "SHA-256", size: 32 },
  "P-384": { hash: "SHA-384", size: 48 },
};

/** ecdsa-with-SHA* (RFC 5758: parameters absent). */
const ECDSA_OIDS: Record<HashName, string> = {
  "SHA-256": "1.2.840.10045.4.3.2",
  "SHA-384": "1.2.840.10045.4.3.3",
  "SHA-512": "1.2.840.10045.4.3.4",
};

/** sha*WithRSAEncryption (RFC 4055: parameters NULL). */
const RSA_OIDS: Record<HashName, string> = {
  "SHA-256": "1.2.840.113549.1.1.11",
  "SHA-384": "1.2.840.113549.1.1.12",
  "SHA-512": "1.2.840.113549.1.1.13",
};

const isHash = (name: string | undefined): name is HashName => name === "SHA-256" || name === "SHA-384" || name === "SHA-512";

const cache = new Map<string, SignatureAlgorithm>();

/**
 * The signature algorithm for `privateKey`, with `hash` when the structure
 * fixes one (CMS) or the key's own otherwise. An RSA key signs with the hash
 * WebCrypto bound to it whatever is asked, so a different `hash` is refused.
 */
export function signatureAlgorithmFor(privateKey: CryptoKey, hash?: HashName): SignatureAlgorithm {
  const algorithm = privateKey.algorithm as Partial<EcKeyAlgorithm & RsaHashedKeyAlgorithm> & KeyAlgorithm;
  let key: string;
  let build: () => SignatureAlgorithm;
  if (algorithm.name === "ECDSA") {
    const curve = CURVES[algorithm.namedCurve ?? ""];
    if (!curve) throw new Error(`unsupported signing curve ${algorithm.namedCurve}`);
    const h = hash ?? curve.hash;
    key = `ECDSA ${algorithm.namedCurve} ${h}`;
    build = () => ({ params: { name: "ECDSA", hash: h }, hash: h, der: sequence(encodeOid(ECDSA_OIDS[h])), ecdsaSize: curve.size });
  } else if (algorithm.name === "RSASSA-PKCS1-v1_5") {
    const bound = algorithm.hash?.name ?? "SHA-256";
    if (!isHash(bound)) throw new Error(`unsupported signing hash ${bound}`);
    if (hash && hash !== bound) throw new Error(`the RSA key is bound to ${bound} and cannot sign with ${hash}`);
    key = `RSA ${bound}`;
    build = () => ({ params: { name: "RSASSA-PKCS1-v1_5" }, hash: bound, der: sequence(encodeOid(RSA_OIDS[bound]), encodeNull()), ecdsaSize: 0 });
  } else {
    throw new Error(`unsupported signing key algorithm ${algorithm.name}`);
  }
  let found = cache.get(key);
  if (!found) {
    found = build();
    cache.set(key, found);
  }
  return found;
}

/** WebCrypto parameters naming the hash too ({ name, hash }), as @peculiar/x509's generators take them. */
export function webCryptoSignParams(privateKey: CryptoKey): EcdsaParams | RsaHashedImportParams {
  const algorithm = signatureAlgorithmFor(privateKey);
  return { ...algorithm.params, hash: algorithm.hash } as EcdsaParams | RsaHashedImportParams;
}
