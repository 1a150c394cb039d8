/**
 * node-webcrypto-p11 signs on libuv's thread pool while object lookups and
 * attribute reads run on the main thread, on other sessions. SoftHSM2 locks
 * its shared state only when C_Initialize is told the caller is
 * multi-threaded (CKF_OS_LOCKING_OK); initialized without it, these
 * interleavings corrupted its heap and killed the process.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { webcrypto } from "node:crypto";
import type { CryptoKey as P11CryptoKey } from "node-webcrypto-p11";
import { available } from "../support/deps.js";
import { Pkcs11KeyStore } from "../../src/pki/keystore/index.js";
import { makeTempDir } from "./helpers.js";
import { initToken, type TestToken } from "./softhsm.js";

describe.skipIf(!(await available("softhsm2")))("Pkcs11KeyStore under thread-pool signing", () => {
  const tmp = makeTempDir("kp-p11-threads-");
  let token: TestToken;
  let store: Pkcs11KeyStore;

  beforeAll(() => {
    token = initToken(tmp.path);
    store = new Pkcs11KeyStore({ ...token, sessions: 4 });
  });
  afterAll(async () => {
    await store?.close();
    tmp.cleanup();
  });

  it("signs on every session while the main thread lists objects and reads attributes", async () => {
    const ec = await store.getOrCreateKeyPair("threads-ec", "EC-P256");
    const rsa = await store.getOrCreateKeyPair("threads-rsa", "RSA-2048");
    const ecPublic = await webcrypto.subtle.importKey("spki", await store.crypto.subtle.exportKey("spki", ec.publicKey), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
    let lookups = 0;
    for (let round = 0; round < 25; round++) {
      const messages = Array.from({ length: 12 }, (_, i) => new TextEncoder().encode(`round ${round} message ${i}`));
      const signing = Promise.all(
        messages.map((m, i) =>
          i % 3 === 0 ? store.sign(rsa.privateKey, { name: "RSASSA-PKCS1-v1_5" }, m) : store.sign(ec.privateKey, { name: "ECDSA", hash: "SHA-256" }, m),
        ),
      );
      const looking = (async () => {
        for (let i = 0; i < 6; i++) {
          (ec.privateKey as P11CryptoKey).key.getAttribute({ label: null, sensitive: null });
          expect(await store.findKeyPair("threads-rsa")).not.toBeNull();
          lookups++;
        }
      })();
      const [signatures] = await Promise.all([signing, looking]);
      for (const [i, signature] of signatures.entries()) {
        if (i % 3 === 0) continue;
        expect(await webcrypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, ecPublic, signature, messages[i]!)).toBe(true);
      }
    }
    expect(lookups).toBe(150);
  });
});
