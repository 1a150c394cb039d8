/**
 * Pkcs11KeyStore: a PKCS#11 token (an HSM; SoftHSM2 in tests) through
 * node-webcrypto-p11. Every token operation goes through a small session
 * pool (session-pool.ts); the WebCrypto it hands out is subtle.ts's.
 */
import { randomFillSync, webcrypto } from "node:crypto";
import { Module as P11Module } from "graphene-pk11";
import { Crypto as P11Crypto, type CryptoKey as P11CryptoKey } from "node-webcrypto-p11";
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
import { SessionPool } from "./session-pool.js";
import { PooledSubtle } from "./subtle.js";

// PKCS#11 flags: CKF_ session flags (graphene's SessionFlag) and C_Initialize's CKF_OS_LOCKING_OK.
const CKF_RW_SESSION = 2;
const CKF_SERIAL_SESSION = 4;
const CKF_OS_LOCKING_OK = 2;

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
