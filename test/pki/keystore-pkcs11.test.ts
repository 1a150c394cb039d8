import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { webcrypto } from "node:crypto";
import { Crypto as P11Crypto, type CryptoKey as P11CryptoKey } from "node-webcrypto-p11";
import { available } from "../support/deps.js";
import { Pkcs11KeyStore } from "../../src/pki/keystore/index.js";
import { makeTempDir } from "./helpers.js";
import { initToken, type TestToken } from "./softhsm.js";

const data = new TextEncoder().encode("to be signed");

describe.skipIf(!(await available("softhsm2")))("Pkcs11KeyStore on SoftHSM2", () => {
  const tmp = makeTempDir("kp-p11-");
  let token: TestToken;
  const open: Pkcs11KeyStore[] = [];
  const store = (sessions = 2) => {
    const s = new Pkcs11KeyStore({ ...token, sessions });
    open.push(s);
    return s;
  };
  const spkiOf = async (s: Pkcs11KeyStore, keys: CryptoKeyPair) => Buffer.from(await s.crypto.subtle.exportKey("spki", keys.publicKey));

  beforeAll(() => {
    token = initToken(tmp.path);
  });
  afterAll(async () => {
    for (const s of open) await s.close();
    tmp.cleanup();
  });

  it("generates keys on the token as sensitive, non-extractable token objects", async () => {
    const s = store();
    const keys = await s.getOrCreateKeyPair("ca-mtf-root", "EC-P256");
    expect(keys.privateKey.extractable).toBe(false);
    await expect(s.crypto.subtle.exportKey("pkcs8", keys.privateKey)).rejects.toThrow();
    const attributes = (keys.privateKey as P11CryptoKey).key.getAttribute({ token: null, sensitive: null, extractable: null, label: null });
    expect(attributes).toMatchObject({ token: true, sensitive: true, extractable: false, label: "ca-mtf-root" });
  });

  it("finds the same key pair by label after a restart", async () => {
    const first = store();
    const before = await first.getOrCreateKeyPair("ca-production-root", "RSA-3072");
    const signature = await first.sign(before.privateKey, { name: "RSASSA-PKCS1-v1_5" }, data);
    const spki = await spkiOf(first, before);
    await first.close();
    const second = store();
    const after = await second.findKeyPair("ca-production-root");
    expect(after).not.toBeNull();
    expect((await spkiOf(second, after!)).equals(spki)).toBe(true);
    const publicKey = await webcrypto.subtle.importKey("spki", spki, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]);
    expect(await webcrypto.subtle.verify({ name: "RSASSA-PKCS1-v1_5" }, publicKey, signature, data)).toBe(true);
    expect(await second.findKeyPair("no-such-key")).toBeNull();
  });

  it("creates and finds keys under different labels at the same time without CKR_GENERAL_ERROR", async () => {
    const s = store(4);
    const labels = Array.from({ length: 6 }, (_, i) => `parallel-${i}`);
    // Creations of distinct labels overlap with lookups that list the token's objects.
    const created = await Promise.all([
      ...labels.map((label, i) => s.getOrCreateKeyPair(label, i % 2 ? "RSA-2048" : "EC-P256")),
      ...labels.map(() => s.findKeyPair("ca-mtf-root")),
    ]);
    expect(created.slice(0, labels.length).every((pair) => pair !== null)).toBe(true);
    for (const label of labels) expect(await s.findKeyPair(label, { purpose: "sign" })).not.toBeNull();
  });

  it("runs 64 concurrent signatures over a pool of 2 sessions without CKR_OPERATION_ACTIVE", async () => {
    const s = store(2);
    const keys = await s.getOrCreateKeyPair("concurrency", "EC-P256");
    const publicKey = await webcrypto.subtle.importKey("spki", await spkiOf(s, keys), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    const messages = Array.from({ length: 64 }, (_, i) => new TextEncoder().encode(`message ${i}`));
    const signatures = await Promise.all(messages.map((m) => s.sign(keys.privateKey, { name: "ECDSA", hash: "SHA-256" }, m)));
    const valid = await Promise.all(signatures.map((sig, i) => webcrypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, publicKey, sig, messages[i]!)));
    expect(valid.every(Boolean)).toBe(true);
  });

  it("gives two stores that create the same label at once the same key pair", async () => {
    const [a, b] = [store(), store()];
    const [ka, kb] = await Promise.all([a.getOrCreateKeyPair("raced", "EC-P256"), b.getOrCreateKeyPair("raced", "EC-P256")]);
    expect((await spkiOf(a, ka)).equals(await spkiOf(b, kb))).toBe(true);
  });

  it("takes random bytes from node:crypto, never from the token", async () => {
    const tokenRandom = vi.spyOn(P11Crypto.prototype, "getRandomValues");
    const s = store();
    const bytes = s.crypto.getRandomValues(new Uint8Array(32));
    const keys = await s.getOrCreateKeyPair("random", "EC-P256");
    await s.sign(keys.privateKey, { name: "ECDSA", hash: "SHA-256" }, data);
    expect(bytes.some((b) => b !== 0)).toBe(true);
    expect(tokenRandom).not.toHaveBeenCalled();
    tokenRandom.mockRestore();
  });

  it("refuses an unknown token label, and a wrong PIN when it logs in first", async () => {
    expect(() => new Pkcs11KeyStore({ ...token, tokenLabel: "nope" })).toThrow(/no PKCS#11 token labelled "nope"/);
    // Login is per process: the PIN is checked by the first store to log in, so close the others first.
    for (const s of open.splice(0)) await s.close();
    expect(() => new Pkcs11KeyStore({ ...token, pin: "0000" })).toThrow(/PIN_INCORRECT/);
    const ok = store();
    expect(await ok.findKeyPair("ca-mtf-root")).not.toBeNull();
  });

  it("refuses operations after close", async () => {
    const s = store();
    const keys = await s.getOrCreateKeyPair("closing", "EC-P256");
    await s.close();
    await expect(s.sign(keys.privateKey, { name: "ECDSA", hash: "SHA-256" }, data)).rejects.toThrow(/closed/);
  });
});
