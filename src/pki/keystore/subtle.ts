/**
 * The WebCrypto handed out by Pkcs11KeyStore (its `crypto`). Token operations
 * go through the session pool; random bytes and digests come from node:crypto:
 * asking the token for random while a sign was in flight crashed Node (stack.md).
 */
import { webcrypto } from "node:crypto";
import type { Crypto as P11Crypto, CryptoKey as P11CryptoKey } from "node-webcrypto-p11";
import type { DecryptAlgorithm, SignAlgorithm } from "./port.js";
import type { SessionPool } from "./session-pool.js";

export class PooledSubtle {
  constructor(
    private readonly pool: SessionPool,
    private readonly assertOpen: () => void,
  ) {}

  private run<T>(operation: (session: P11Crypto) => Promise<T>): Promise<T> {
    this.assertOpen();
    return this.pool.run(operation);
  }

  sign(algorithm: SignAlgorithm, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    return this.run((s) => s.subtle.sign(algorithm, key, data));
  }

  verify(algorithm: SignAlgorithm, key: CryptoKey, signature: BufferSource, data: BufferSource): Promise<boolean> {
    return this.run((s) => s.subtle.verify(algorithm, key, signature, data));
  }

  encrypt(algorithm: AlgorithmIdentifier | RsaOaepParams, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    return this.run((s) => s.subtle.encrypt(algorithm, key, data));
  }

  /**
   * Decrypts on the token. `algorithm` may name a mechanism other than the one
   * the CryptoKey was wrapped for (RSAES-PKCS1-v1_5, or RSA-OAEP with another
   * `hash`): PKCS#11 chooses the mechanism per operation and the token object
   * only needs CKA_DECRYPT, so the same object is re-wrapped for the request.
   */
  decrypt(algorithm: DecryptAlgorithm, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    return this.run(async (s) => {
      const wanted = typeof algorithm === "string" ? { name: algorithm } : algorithm;
      const current = key.algorithm as KeyAlgorithm & { hash?: { name: string } };
      const sameMechanism = current.name === wanted.name && (wanted.hash === undefined || current.hash?.name === wanted.hash);
      const tokenKeyId = (key as Partial<P11CryptoKey>).id;
      let target = key;
      if (!sameMechanism && tokenKeyId) {
        target = await s.keyStorage.getItem(tokenKeyId, { ...wanted }, false, ["decrypt"]);
      }
      return s.subtle.decrypt(wanted, target, data);
    });
  }

  digest(algorithm: AlgorithmIdentifier, data: BufferSource): Promise<ArrayBuffer> {
    // Hashes never touch the token (stack.md): node:crypto is faster and safe to run concurrently.
    return webcrypto.subtle.digest(algorithm, data);
  }

  exportKey(format: "spki" | "jwk" | "raw" | "pkcs8", key: CryptoKey): Promise<ArrayBuffer | JsonWebKey> {
    return this.run((s) => s.subtle.exportKey(format, key));
  }

  importKey(
    format: "spki" | "raw" | "pkcs8",
    keyData: BufferSource,
    algorithm: AlgorithmIdentifier | RsaHashedImportParams | EcKeyImportParams,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    return this.run((s) => s.subtle.importKey(format, keyData, algorithm, extractable, keyUsages));
  }
}
