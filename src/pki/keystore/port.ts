/**
 * The signer port: where the CA's and the KMS's private keys live, and the
 * only way anything is signed. Keys never leave a KeyStore; callers get
 * CryptoKey handles, sign with KeyStore.sign (certificates, CRLs, OCSP
 * responses, CMS), and use `crypto` only for public-key export, decryption
 * and as the WebCrypto for @peculiar/x509 parsing.
 *
 * Adapters, one file each beside this one: file-keystore.ts (PKCS#8 files),
 * pkcs11-keystore.ts (a PKCS#11 token, over session-pool.ts and subtle.ts).
 */
export type KeyAlgorithmName = "EC-P256" | "EC-P384" | "RSA-2048" | "RSA-3072";

/**
 * What a key pair is for. WebCrypto binds an RSA key to one algorithm, and a
 * token sets CKA_SIGN or CKA_DECRYPT at generation: a signing key (CA, KMS
 * message signing) and a decryption key (KMS message encryption) are
 * different objects. EC keys are always signing keys here.
 */
export type KeyPurpose = "sign" | "decrypt";

export interface FindKeyOptions {
  purpose?: KeyPurpose;
  publicKeySpki?: Uint8Array;
}

export type SignAlgorithm = AlgorithmIdentifier | RsaPssParams | EcdsaParams;
/** WebCrypto decrypt parameters, plus `hash` for RSA-OAEP (whose hash WebCrypto otherwise takes from the key). */
export type DecryptAlgorithm = string | (Algorithm & { hash?: string; label?: BufferSource });

/** Signs `data` with a private key it holds; WebCrypto parameters come from algorithms.ts. */
export interface Signer {
  sign(privateKey: CryptoKey, algorithm: SignAlgorithm, data: Uint8Array): Promise<Uint8Array>;
}

export interface KeyStore extends Signer {
  /** The WebCrypto that owns the keys; pass it to @peculiar/x509 generators and to signCms/decryptCms. */
  readonly crypto: Crypto;
  /** Loads the pair stored under `label`, or creates it. Concurrent callers (also in other processes, for files) end with the same pair. */
  getOrCreateKeyPair(label: string, algorithm: KeyAlgorithmName, purpose?: KeyPurpose): Promise<CryptoKeyPair>;
  /**
   * The pair stored under `label`, or null. With `publicKeySpki`, only the pair
   * with that public key (a token may hold several pairs under one label after
   * a cross-process creation race; the CA picks the one its stored certificate names).
   */
  findKeyPair(label: string, options?: FindKeyOptions): Promise<CryptoKeyPair | null>;
  /** Signs with a private key of this store (serialized per session for tokens). */
  sign(privateKey: CryptoKey, algorithm: SignAlgorithm, data: Uint8Array): Promise<Uint8Array>;
  /**
   * The private key under `label` as unencrypted PKCS#8 PEM, for Node's TLS
   * (which signs handshakes itself and cannot call a WebCrypto key). Only a
   * store whose keys are files can; a token's keys never leave it.
   */
  tlsPrivateKeyPem?(label: string): Promise<string | null>;
  close(): Promise<void>;
}

const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkLabel(label: string): void {
  // Labels become file names: no path separators, no leading dot.
  if (!LABEL.test(label)) throw new Error(`invalid key label ${JSON.stringify(label)}`);
}

/** WebCrypto parameters for generating/importing a key of the given name and purpose. */
export function webCryptoAlgorithm(algorithm: KeyAlgorithmName, purpose: KeyPurpose): RsaHashedImportParams | EcKeyImportParams {
  switch (algorithm) {
    case "EC-P256":
      return { name: "ECDSA", namedCurve: "P-256" };
    case "EC-P384":
      return { name: "ECDSA", namedCurve: "P-384" };
    case "RSA-2048":
    case "RSA-3072":
      return purpose === "decrypt" ? { name: "RSA-OAEP", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  }
}

export const usagesFor = (purpose: KeyPurpose): { privateKey: KeyUsage[]; publicKey: KeyUsage[] } =>
  purpose === "decrypt" ? { privateKey: ["decrypt"], publicKey: ["encrypt"] } : { privateKey: ["sign"], publicKey: ["verify"] };

export const rsaBits = (algorithm: KeyAlgorithmName): number => (algorithm === "RSA-3072" ? 3072 : 2048);

/** "EC-P256", "RSA-2048", ... from a CryptoKey's algorithm, or a descriptive string for anything else. */
export function describeCryptoKey(key: CryptoKey): string {
  const algorithm = key.algorithm as Partial<EcKeyAlgorithm & RsaHashedKeyAlgorithm>;
  if (algorithm.namedCurve === "P-256") return "EC-P256";
  if (algorithm.namedCurve === "P-384") return "EC-P384";
  if (algorithm.modulusLength) return `RSA-${algorithm.modulusLength}`;
  return key.algorithm.name;
}
