/**
 * The signer port: where the CA's (and later the KMS's) private keys live.
 * Keys never leave a KeyStore; callers get CryptoKey handles and the WebCrypto
 * (`crypto`) that owns them, which they hand to @peculiar/x509 generators.
 *
 * Two implementations:
 * - FileKeyStore: PKCS#8 PEM files (optionally passphrase-encrypted), for
 *   development and small installs. Node's WebCrypto is thread-safe, so no
 *   serialization is needed.
 * - Pkcs11KeyStore: a PKCS#11 token (an HSM; SoftHSM2 in tests) through
 *   node-webcrypto-p11. One node-webcrypto-p11 Crypto is one PKCS#11 session,
 *   and a session runs one operation at a time (concurrent signs fail with
 *   CKR_OPERATION_ACTIVE), so every token operation goes through a small
 *   session pool: each session serves one operation at a time, and up to
 *   `sessions` operations run in parallel. Random bytes and hashes always come
 *   from node:crypto: asking the token for random while a sign was in flight
 *   crashed Node (stack.md).
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateKeyPairCb,
  randomBytes,
  randomFillSync,
  webcrypto,
  type KeyObject,
} from "node:crypto";
import { promises as fs, constants as fsConstants } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { asBufferSource } from "./der.js";
import { Module as P11Module } from "graphene-pk11";
import { Crypto as P11Crypto, type CryptoKey as P11CryptoKey } from "node-webcrypto-p11";

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

export interface KeyStore {
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

function checkLabel(label: string): void {
  // Labels become file names: no path separators, no leading dot.
  if (!LABEL.test(label)) throw new Error(`invalid key label ${JSON.stringify(label)}`);
}

/** WebCrypto parameters for generating/importing a key of the given name and purpose. */
function webCryptoAlgorithm(algorithm: KeyAlgorithmName, purpose: KeyPurpose): RsaHashedImportParams | EcKeyImportParams {
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

const usagesFor = (purpose: KeyPurpose): { privateKey: KeyUsage[]; publicKey: KeyUsage[] } =>
  purpose === "decrypt" ? { privateKey: ["decrypt"], publicKey: ["encrypt"] } : { privateKey: ["sign"], publicKey: ["verify"] };

const rsaBits = (algorithm: KeyAlgorithmName): number => (algorithm === "RSA-3072" ? 3072 : 2048);

// ---------------------------------------------------------------------------
// File key store
// ---------------------------------------------------------------------------

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

/** "EC-P256", "RSA-2048", ... from a CryptoKey's algorithm, or a descriptive string for anything else. */
export function describeCryptoKey(key: CryptoKey): string {
  const algorithm = key.algorithm as Partial<EcKeyAlgorithm & RsaHashedKeyAlgorithm>;
  if (algorithm.namedCurve === "P-256") return "EC-P256";
  if (algorithm.namedCurve === "P-384") return "EC-P384";
  if (algorithm.modulusLength) return `RSA-${algorithm.modulusLength}`;
  return key.algorithm.name;
}

// ---------------------------------------------------------------------------
// PKCS#11 key store
// ---------------------------------------------------------------------------

// PKCS#11 flags: CKF_ session flags (graphene's SessionFlag) and C_Initialize's CKF_OS_LOCKING_OK.
const CKF_RW_SESSION = 2;
const CKF_SERIAL_SESSION = 4;
const CKF_OS_LOCKING_OK = 2;

/**
 * A fixed set of PKCS#11 sessions. Each session runs one operation at a time;
 * callers queue for the next free session (FIFO).
 */
class SessionPool {
  private readonly free: P11Crypto[];
  private readonly waiters: Array<(session: P11Crypto) => void> = [];

  constructor(readonly sessions: readonly P11Crypto[]) {
    this.free = [...sessions];
  }

  async run<T>(operation: (session: P11Crypto) => Promise<T>): Promise<T> {
    const session = this.free.pop() ?? (await new Promise<P11Crypto>((resolve) => this.waiters.push(resolve)));
    try {
      return await operation(session);
    } finally {
      const next = this.waiters.shift();
      if (next) next(session);
      else this.free.push(session);
    }
  }

  /** Runs `operation` once every session is idle (used by close). */
  async drain(): Promise<void> {
    await Promise.all(this.sessions.map(() => this.run(async () => undefined)));
  }
}

/**
 * The WebCrypto handed out by Pkcs11KeyStore. Token operations go through the
 * session pool; random bytes and digests come from node:crypto. It implements
 * the part of SubtleCrypto that @peculiar/x509 and this module use.
 */
class PooledSubtle {
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

export interface Pkcs11KeyStoreOptions {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  library: string;
  tokenLabel: string;
  pin: string;
  /** Number of PKCS#11 sessions (parallel operations). Default 4. */
  sessions?: number;
}

interface TokenKey {
  index: string;
  ckaId: string;
  key: P11CryptoKey;
}

/**
 * One loaded PKCS#11 module per library path and process. C_Finalize ends
 * every session of the process, so the module is finalized only when the last
 * Pkcs11KeyStore using it closes (after each has drained its sessions).
 *
 * The module is initialized with CKF_OS_LOCKING_OK. node-webcrypto-p11 signs,
 * verifies and generates on libuv's thread pool while key lookups and
 * attribute reads run on the main thread, so the module is called from
 * several threads at once; without the flag SoftHSM2 takes the caller at its
 * word that it is single-threaded, runs without its mutexes, and the
 * interleaving corrupted its heap (the worker died with "malloc_consolidate():
 * unaligned fastbin chunk detected" inside C_GetAttributeValue).
 * node-webcrypto-p11's own loader calls C_Initialize without arguments, so it
 * is not used: the module is loaded here and sessions are handed to it.
 */
const loadedModules = new Map<string, { module: P11Module; users: number }>();

function acquireModule(library: string): P11Module {
  const loaded = loadedModules.get(library);
  if (loaded) {
    loaded.users++;
    return loaded.module;
  }
  const module = P11Module.load(library);
  try {
    module.initialize({ flags: CKF_OS_LOCKING_OK });
  } catch (e) {
    module.close();
    throw e;
  }
  loadedModules.set(library, { module, users: 1 });
  return module;
}

function releaseModule(library: string): void {
  const loaded = loadedModules.get(library);
  if (!loaded) return;
  if (--loaded.users > 0) return;
  loadedModules.delete(library);
  try {
    loaded.module.finalize();
  } finally {
    loaded.module.close();
  }
}

/**
 * Key creation on a token is find-then-generate, which a token cannot make
 * atomic. Within a process, creations of one label are serialized here, so
 * every store in the process gets the same pair. Across processes two pairs
 * can still appear; find() then prefers the lowest CKA_ID, and the CA binds
 * the key through its atomically stored certificate (findKeyPair with publicKeySpki).
 */
const creationLocks = new Map<string, Promise<unknown>>();

/**
 * SoftHSM2 answers CKR_GENERAL_ERROR when one session lists the token's
 * objects while another creates one. Object management (find, generate) on
 * a token is therefore one at a time in the process; signing and decrypting
 * with existing keys stay parallel over the session pool.
 */
const objectLocks = new Map<string, Promise<unknown>>();

/** Runs `work` after every earlier holder of `key` in `locks` has finished. */
async function withLock<T>(locks: Map<string, Promise<unknown>>, key: string, work: () => Promise<T>): Promise<T> {
  const previous = locks.get(key) ?? Promise.resolve();
  const current = previous.catch(() => undefined).then(work);
  locks.set(key, current);
  try {
    return await current;
  } finally {
    if (locks.get(key) === current) locks.delete(key);
  }
}

const withCreationLock = <T>(key: string, create: () => Promise<T>): Promise<T> => withLock(creationLocks, key, create);

export class Pkcs11KeyStore implements KeyStore {
  readonly crypto: Crypto;
  private readonly pool: SessionPool;
  private readonly library: string;
  private readonly tokenLabel: string;
  private readonly cache = new Map<string, Promise<CryptoKeyPair>>();
  private closed = false;

  constructor(options: Pkcs11KeyStoreOptions) {
    const count = options.sessions ?? 4;
    if (!Number.isInteger(count) || count < 1) throw new Error("sessions must be a positive integer");
    this.library = options.library;
    this.tokenLabel = options.tokenLabel;
    const module = acquireModule(options.library);
    const sessions: P11Crypto[] = [];
    try {
      const slots = module.getSlots(true);
      let slot: P11Crypto["slot"] | undefined;
      for (let i = 0; i < slots.length; i++) {
        const candidate = slots.items(i);
        if (candidate.getToken().label.trim() === options.tokenLabel) {
          slot = candidate;
          break;
        }
      }
      if (!slot) throw new Error(`no PKCS#11 token labelled ${JSON.stringify(options.tokenLabel)} in ${options.library}`);
      for (let i = 0; i < count; i++) {
        sessions.push(new P11Crypto({ session: slot.open(CKF_SERIAL_SESSION | CKF_RW_SESSION) }));
      }
      // Login state is per application, not per session: one login serves every session.
      sessions[0]!.login(options.pin);
      this.pool = new SessionPool(sessions);
    } catch (e) {
      for (const session of sessions) session.session.close();
      releaseModule(options.library);
      throw e;
    }
    const subtle = new PooledSubtle(this.pool, () => this.assertOpen());
    const crypto = {
      subtle,
      getRandomValues: <T extends ArrayBufferView | null>(array: T): T => {
        // Never from the token (see the module comment).
        if (array) randomFillSync(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
        return array;
      },
      randomUUID: () => webcrypto.randomUUID(),
    };
    // PooledSubtle implements the SubtleCrypto methods used here; the DOM interface's overload set can't be declared by a forwarding class.
    this.crypto = crypto as unknown as Crypto;
  }

  async getOrCreateKeyPair(label: string, algorithm: KeyAlgorithmName, purpose: KeyPurpose = "sign"): Promise<CryptoKeyPair> {
    this.assertOpen();
    checkLabel(label);
    const cacheKey = `${label}\u0000${purpose}`;
    let pending = this.cache.get(cacheKey);
    if (!pending) {
      pending = withCreationLock(`${this.tokenKey}\u0000${label}`, async () => {
        const found = await this.find(label, purpose);
        if (found) return found;
        await this.generate(label, algorithm, purpose);
        // Read back rather than use the generated handles: if another process generated
        // under the same label at the same moment, later readers pick the same pair.
        const pair = await this.find(label, purpose);
        if (!pair) throw new Error(`key ${label} not found on the token right after generating it`);
        return pair;
      });
      this.cache.set(cacheKey, pending);
      pending.catch(() => this.cache.delete(cacheKey));
    }
    const pair = await pending;
    const actual = describeCryptoKey(pair.publicKey);
    if (actual !== algorithm) throw new Error(`key ${label} on the token is ${actual}, not ${algorithm}`);
    return pair;
  }

  async findKeyPair(label: string, options: FindKeyOptions = {}): Promise<CryptoKeyPair | null> {
    this.assertOpen();
    checkLabel(label);
    return this.find(label, options.purpose ?? "sign", options.publicKeySpki);
  }

  async sign(privateKey: CryptoKey, algorithm: SignAlgorithm, data: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await this.crypto.subtle.sign(algorithm, privateKey, asBufferSource(data)));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.pool.drain();
    this.closed = true;
    this.cache.clear();
    for (const session of this.pool.sessions) {
      try {
        session.session.close();
      } catch {
        // already closed by the token: nothing left to release
      }
    }
    releaseModule(this.library);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("key store is closed");
  }

  private async generate(label: string, algorithm: KeyAlgorithmName, purpose: KeyPurpose): Promise<void> {
    const base = webCryptoAlgorithm(algorithm, purpose);
    const params =
      base.name === "ECDSA"
        ? { ...base, label, token: true, sensitive: true }
        : { ...base, modulusLength: rsaBits(algorithm), publicExponent: new Uint8Array([1, 0, 1]), label, token: true, sensitive: true };
    const usages = usagesFor(purpose);
    await withLock(objectLocks, this.tokenKey, () =>
      this.pool.run((s) => s.subtle.generateKey(params, false, [...usages.privateKey, ...usages.publicKey])),
    );
  }

  private get tokenKey(): string {
    return `${this.library}\u0000${this.tokenLabel}`;
  }

  /**
   * Finds the pair labelled `label`. node-webcrypto-p11 indexes token keys as
   * "<private|public>-<handle>-<CKA_ID>"; a pair shares its CKA_ID. If a race
   * left several pairs under one label, the lowest CKA_ID wins, the same
   * choice in every process.
   */
  private async find(label: string, purpose: KeyPurpose, publicKeySpki?: Uint8Array): Promise<CryptoKeyPair | null> {
    return withLock(objectLocks, this.tokenKey, () => this.findUnlocked(label, purpose, publicKeySpki));
  }

  private async findUnlocked(label: string, purpose: KeyPurpose, publicKeySpki?: Uint8Array): Promise<CryptoKeyPair | null> {
    return this.pool.run(async (session) => {
      const indexes = await session.keyStorage.keys();
      const privates: TokenKey[] = [];
      const publics = new Map<string, TokenKey>();
      for (const index of indexes) {
        const [type, , ckaId] = index.split("-");
        if ((type !== "private" && type !== "public") || !ckaId) continue;
        const key = await session.keyStorage.getItem(index);
        if ((key.algorithm as { label?: string }).label !== label) continue;
        if (type === "private") privates.push({ index, ckaId, key });
        else publics.set(ckaId, { index, ckaId, key });
      }
      const candidates = privates.filter((p) => publics.has(p.ckaId)).sort((a, b) => a.ckaId.localeCompare(b.ckaId));
      let chosen: TokenKey | undefined = candidates[0];
      if (publicKeySpki) {
        chosen = undefined;
        for (const candidate of candidates) {
          const spki = await session.subtle.exportKey("spki", publics.get(candidate.ckaId)!.key);
          if (Buffer.from(spki).equals(publicKeySpki)) {
            chosen = candidate;
            break;
          }
        }
      }
      if (!chosen) return null;
      const pub = publics.get(chosen.ckaId)!;
      if (purpose === "sign" && chosen.key.algorithm.name !== "RSA-OAEP") {
        return { privateKey: chosen.key, publicKey: pub.key };
      }
      // Re-wrap the token objects with the algorithm the caller asked for (node-webcrypto-p11 guesses RSASSA for RSA keys).
      const algorithm = purpose === "decrypt" ? { name: "RSA-OAEP", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
      const usages = usagesFor(purpose);
      const privateKey = await session.keyStorage.getItem(chosen.index, algorithm, false, usages.privateKey);
      const publicKey = await session.keyStorage.getItem(pub.index, algorithm, true, usages.publicKey);
      return { privateKey, publicKey };
    });
  }
}
