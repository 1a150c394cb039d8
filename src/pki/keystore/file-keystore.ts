/**
 * FileKeyStore: PKCS#8 PEM files (optionally passphrase-encrypted), for
 * development and small installs. Node's WebCrypto is thread-safe, so no
 * serialization is needed.
 */
import { createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairCb, randomBytes, webcrypto, type KeyObject } from "node:crypto";
import { promises as fs, constants as fsConstants } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { asBufferSource } from "../der.js";
import {
  checkLabel,
  describeCryptoKey,
  rsaBits,
  usagesFor,
  webCryptoAlgorithm,
  type FindKeyOptions,
  type KeyAlgorithmName,
  type KeyPurpose,
  type KeyStore,
  type SignAlgorithm,
} from "./port.js";

const generateKeyPairAsync = promisify(generateKeyPairCb);

/** Node's webcrypto object, typed as the DOM Crypto that @peculiar/x509 asks for (same runtime shape). */
export const nodeCrypto = webcrypto as unknown as Crypto;

function keyObjectAlgorithm(key: KeyObject): KeyAlgorithmName | null {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === "ec") {
    if (details?.namedCurve === "prime256v1") return "EC-P256";
    if (details?.namedCurve === "secp384r1") return "EC-P384";
  }
  if (key.asymmetricKeyType === "rsa" && details?.publicExponent === 65537n) {
    if (details.modulusLength === 2048) return "RSA-2048";
    if (details.modulusLength === 3072) return "RSA-3072";
  }
  return null;
}

export interface FileKeyStoreOptions {
  dir: string;
  /** When set, key files are PKCS#8 EncryptedPrivateKeyInfo (PBES2, AES-256-CBC), readable by `openssl pkey -passin`. */
  passphrase?: string;
}

export class FileKeyStore implements KeyStore {
  readonly crypto: Crypto = nodeCrypto;
  private readonly dir: string;
  private readonly passphrase: string | undefined;
  private readonly cache = new Map<string, Promise<CryptoKeyPair>>();
  private dirReady: Promise<void> | undefined;
  private closed = false;

  constructor(options: FileKeyStoreOptions) {
    this.dir = options.dir;
    this.passphrase = options.passphrase;
  }

  /** Path of the key file for a label (for operators and tests; the store never hands out key bytes). */
  pathOf(label: string): string {
    checkLabel(label);
    return join(this.dir, `${label}.key`);
  }

  async getOrCreateKeyPair(label: string, algorithm: KeyAlgorithmName, purpose: KeyPurpose = "sign"): Promise<CryptoKeyPair> {
    this.assertOpen();
    const key = `${label}\u0000${purpose}`;
    let pending = this.cache.get(key);
    if (!pending) {
      pending = this.loadOrCreate(label, algorithm, purpose);
      this.cache.set(key, pending);
      pending.catch(() => this.cache.delete(key));
    }
    const pair = await pending;
    const actual = describeCryptoKey(pair.publicKey);
    if (actual !== algorithm) throw new Error(`key ${label} is ${actual}, not ${algorithm}`);
    return pair;
  }

  async findKeyPair(label: string, options: FindKeyOptions = {}): Promise<CryptoKeyPair | null> {
    this.assertOpen();
    const purpose = options.purpose ?? "sign";
    const keyObject = await this.readKeyFile(label);
    if (!keyObject) return null;
    const algorithm = keyObjectAlgorithm(keyObject);
    if (!algorithm) throw new Error(`key file for ${label} holds an unsupported key`);
    if (options.publicKeySpki) {
      const spki = createPublicKey(keyObject).export({ type: "spki", format: "der" });
      if (!spki.equals(options.publicKeySpki)) return null;
    }
    return this.toCryptoKeyPair(keyObject, algorithm, purpose);
  }

  async tlsPrivateKeyPem(label: string): Promise<string | null> {
    this.assertOpen();
    checkLabel(label);
    const key = await this.readKeyFile(label);
    return key ? String(key.export({ type: "pkcs8", format: "pem" })) : null;
  }

  async sign(privateKey: CryptoKey, algorithm: SignAlgorithm, data: Uint8Array): Promise<Uint8Array> {
    this.assertOpen();
    return new Uint8Array(await this.crypto.subtle.sign(algorithm, privateKey, asBufferSource(data)));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cache.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("key store is closed");
  }

  private ensureDir(): Promise<void> {
    this.dirReady ??= (async () => {
      await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
      const stat = await fs.stat(this.dir);
      if ((stat.mode & 0o077) !== 0) {
        throw new Error(`key directory ${this.dir} is accessible to group/other (mode ${(stat.mode & 0o777).toString(8)}); chmod 700 it`);
      }
    })();
    return this.dirReady;
  }

  private async loadOrCreate(label: string, algorithm: KeyAlgorithmName, purpose: KeyPurpose): Promise<CryptoKeyPair> {
    await this.ensureDir();
    const existing = await this.readKeyFile(label);
    if (existing) return this.toCryptoKeyPair(existing, algorithm, purpose);
    const created = await this.createKeyFile(label, algorithm);
    return this.toCryptoKeyPair(created, algorithm, purpose);
  }

  private async readKeyFile(label: string): Promise<KeyObject | null> {
    const path = this.pathOf(label);
    let handle: fs.FileHandle;
    try {
      // O_NOFOLLOW: a symlink planted in the key directory must not redirect us.
      handle = await fs.open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    try {
      const stat = await handle.stat();
      if ((stat.mode & 0o077) !== 0) {
        throw new Error(`refusing key file ${path}: mode ${(stat.mode & 0o777).toString(8)} gives group/other access (want 600)`);
      }
      const pem = await handle.readFile("utf8");
      try {
        return createPrivateKey(this.passphrase === undefined ? { key: pem } : { key: pem, passphrase: this.passphrase });
      } catch (e) {
        throw new Error(`cannot read key file ${path} (wrong or missing passphrase?): ${(e as Error).message}`, { cause: e });
      }
    } finally {
      await handle.close();
    }
  }

  /**
   * Writes a new key to a temp file and links it into place. link(2) fails
   * with EEXIST if the name exists, so of two processes racing, exactly one
   * key file wins and the loser loads the winner's key.
   */
  private async createKeyFile(label: string, algorithm: KeyAlgorithmName): Promise<KeyObject> {
    const pair =
      algorithm === "EC-P256" || algorithm === "EC-P384"
        ? await generateKeyPairAsync("ec", { namedCurve: algorithm === "EC-P256" ? "P-256" : "P-384" })
        : await generateKeyPairAsync("rsa", { modulusLength: rsaBits(algorithm), publicExponent: 65537 });
    const pem =
      this.passphrase === undefined
        ? pair.privateKey.export({ type: "pkcs8", format: "pem" })
        : pair.privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: this.passphrase });
    const finalPath = this.pathOf(label);
    const tempPath = join(this.dir, `.${label}.${randomBytes(8).toString("hex")}.tmp`);
    const handle = await fs.open(tempPath, "wx", 0o600);
    try {
      await handle.writeFile(pem);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.link(tempPath, finalPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const winner = await this.readKeyFile(label);
      if (!winner) throw new Error(`key file ${finalPath} vanished while being created`, { cause: e });
      return winner;
    } finally {
      await fs.unlink(tempPath).catch(() => undefined);
    }
    await this.syncDir();
    return pair.privateKey;
  }

  private async syncDir(): Promise<void> {
    const dir = await fs.open(this.dir, "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  private async toCryptoKeyPair(key: KeyObject, algorithm: KeyAlgorithmName, purpose: KeyPurpose): Promise<CryptoKeyPair> {
    const actual = keyObjectAlgorithm(key);
    if (actual !== algorithm) throw new Error(`stored key is ${actual ?? "unsupported"}, expected ${algorithm}`);
    const params = webCryptoAlgorithm(algorithm, purpose);
    const usages = usagesFor(purpose);
    const pkcs8 = key.export({ type: "pkcs8", format: "der" });
    const spki = createPublicKey(key).export({ type: "spki", format: "der" });
    const subtle = this.crypto.subtle;
    // The private key is non-extractable: nothing past this point can read its bytes back out.
    const privateKey = await subtle.importKey("pkcs8", pkcs8, params, false, usages.privateKey);
    pkcs8.fill(0);
    const publicKey = await subtle.importKey("spki", spki, params, true, usages.publicKey);
    return { privateKey, publicKey };
  }
}
