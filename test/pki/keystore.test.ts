import "reflect-metadata";
import { afterAll, describe, expect, it } from "vitest";
import { chmodSync, readdirSync, readFileSync, statSync } from "node:fs";
import { webcrypto } from "node:crypto";
import { available } from "../support/deps.js";
import { FileKeyStore } from "../../src/pki/keystore/index.js";
import { makeTempDir, openssl, opensslResult, pemBody } from "./helpers.js";

const spkiOf = async (keys: CryptoKeyPair) => Buffer.from(await webcrypto.subtle.exportKey("spki", keys.publicKey));
const data = new TextEncoder().encode("to be signed");
const haveOpenssl = await available("openssl");

describe("FileKeyStore", () => {
  const tmp = makeTempDir("kp-keys-");
  afterAll(() => tmp.cleanup());
  let n = 0;
  const freshDir = () => `${tmp.path}/store-${n++}`;

  it("creates the key file with mode 0600 in a directory with mode 0700", async () => {
    const dir = freshDir();
    const store = new FileKeyStore({ dir });
    await store.getOrCreateKeyPair("ca-mtf-root", "EC-P256");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(store.pathOf("ca-mtf-root")).mode & 0o777).toBe(0o600);
    expect(readFileSync(store.pathOf("ca-mtf-root"), "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(readdirSync(dir)).toEqual(["ca-mtf-root.key"]); // no temp files left behind
  });

  it("returns the same key pair after a restart, and signatures made before verify after", async () => {
    const dir = freshDir();
    const first = new FileKeyStore({ dir });
    const before = await first.getOrCreateKeyPair("kms-signing", "RSA-2048");
    const signature = await first.sign(before.privateKey, { name: "RSASSA-PKCS1-v1_5" }, data);
    await first.close();
    const second = new FileKeyStore({ dir });
    const after = await second.getOrCreateKeyPair("kms-signing", "RSA-2048");
    expect((await spkiOf(after)).equals(await spkiOf(before))).toBe(true);
    expect(await webcrypto.subtle.verify({ name: "RSASSA-PKCS1-v1_5" }, after.publicKey, signature, data)).toBe(true);
    expect(await second.findKeyPair("kms-signing")).not.toBeNull();
    expect(await second.findKeyPair("never-created")).toBeNull();
  });

  it("keeps private keys non-extractable", async () => {
    const store = new FileKeyStore({ dir: freshDir() });
    const keys = await store.getOrCreateKeyPair("k", "EC-P384");
    expect(keys.privateKey.extractable).toBe(false);
    await expect(webcrypto.subtle.exportKey("pkcs8", keys.privateKey)).rejects.toThrow();
  });

  it("refuses to load a key file that group or others can read", async () => {
    const dir = freshDir();
    const store = new FileKeyStore({ dir });
    await store.getOrCreateKeyPair("k", "EC-P256");
    chmodSync(store.pathOf("k"), 0o640);
    await expect(new FileKeyStore({ dir }).getOrCreateKeyPair("k", "EC-P256")).rejects.toThrow(/group\/other/);
    await expect(new FileKeyStore({ dir }).findKeyPair("k")).rejects.toThrow(/group\/other/);
  });

  it("refuses labels that could escape the key directory", async () => {
    const store = new FileKeyStore({ dir: freshDir() });
    await expect(store.getOrCreateKeyPair("../evil", "EC-P256")).rejects.toThrow(/invalid key label/);
    await expect(store.getOrCreateKeyPair(".hidden", "EC-P256")).rejects.toThrow(/invalid key label/);
  });

  it("ends with one key file and one key when two stores create the same label at once", async () => {
    const dir = freshDir();
    const stores = Array.from({ length: 4 }, () => new FileKeyStore({ dir }));
    const pairs = await Promise.all(stores.map((s) => s.getOrCreateKeyPair("ca-production-issuing", "EC-P256")));
    const spkis = await Promise.all(pairs.map(spkiOf));
    for (const spki of spkis) expect(spki.equals(spkis[0]!)).toBe(true);
    expect(readdirSync(dir)).toEqual(["ca-production-issuing.key"]);
  });

  it("refuses a stored key of another algorithm than the one asked for", async () => {
    const dir = freshDir();
    await new FileKeyStore({ dir }).getOrCreateKeyPair("k", "EC-P256");
    await expect(new FileKeyStore({ dir }).getOrCreateKeyPair("k", "RSA-2048")).rejects.toThrow(/EC-P256/);
  });

  it("imports an RSA key for decryption when asked for that purpose", async () => {
    const store = new FileKeyStore({ dir: freshDir() });
    const keys = await store.getOrCreateKeyPair("kms-encryption", "RSA-2048", "decrypt");
    expect(keys.privateKey.algorithm.name).toBe("RSA-OAEP");
    expect(keys.privateKey.usages).toEqual(["decrypt"]);
    const ciphertext = await webcrypto.subtle.encrypt({ name: "RSA-OAEP" }, keys.publicKey, data);
    expect(Buffer.from(await webcrypto.subtle.decrypt({ name: "RSA-OAEP" }, keys.privateKey, ciphertext)).toString()).toBe("to be signed");
  });

  describe.skipIf(!haveOpenssl)("with a passphrase", () => {
    it("writes PKCS#8 EncryptedPrivateKeyInfo that openssl pkey decrypts with the passphrase only", async () => {
      const dir = freshDir();
      const store = new FileKeyStore({ dir, passphrase: "correct horse" });
      const keys = await store.getOrCreateKeyPair("ca-mtf-issuing", "RSA-3072");
      const path = store.pathOf("ca-mtf-issuing");
      expect(readFileSync(path, "utf8")).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
      const info = openssl(["asn1parse", "-in", path]);
      expect(info).toContain("PBES2");
      expect(info).toContain("aes-256-cbc");
      const publicPem = openssl(["pkey", "-in", path, "-passin", "pass:correct horse", "-pubout"]);
      expect(pemBody(publicPem).equals(await spkiOf(keys))).toBe(true);
      expect(opensslResult(["pkey", "-in", path, "-passin", "pass:wrong", "-pubout"]).ok).toBe(false);
    });

    it("refuses to load an encrypted key with a wrong passphrase or none", async () => {
      const dir = freshDir();
      await new FileKeyStore({ dir, passphrase: "right" }).getOrCreateKeyPair("k", "EC-P256");
      await expect(new FileKeyStore({ dir, passphrase: "wrong" }).getOrCreateKeyPair("k", "EC-P256")).rejects.toThrow(/passphrase/);
      await expect(new FileKeyStore({ dir }).getOrCreateKeyPair("k", "EC-P256")).rejects.toThrow(/passphrase/);
      const reloaded = await new FileKeyStore({ dir, passphrase: "right" }).getOrCreateKeyPair("k", "EC-P256");
      expect(reloaded.privateKey.algorithm.name).toBe("ECDSA");
    });
  });
});
