/**
 * The hand-written encoder with the CA keys on a PKCS#11 token (SoftHSM2):
 * 16 issuances in flight over a pool of 2 sessions give the library path's
 * TBSCertificate, and every signature made on the token verifies.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicKey, generateKeyPairSync, verify as nodeVerify } from "node:crypto";
import { CertificateKind, Environment } from "../../src/kernel/domain.js";
import { FileCaMaterialStore, loadOrCreateAuthority, type CertificateAuthority } from "../../src/pki/ca.js";
import { children, content, raw, readTlv } from "../../src/pki/der.js";
import { nameDer, newSerialHex } from "../../src/pki/issue.js";
import { Pkcs11KeyStore } from "../../src/pki/keystore/index.js";
import { DEFAULT_PROFILES } from "../../src/pki/profiles.js";
import { available } from "../support/deps.js";
import { makeTempDir } from "./helpers.js";
import { issueLeafCertificateWithLibrary } from "./library-path.js";
import { initToken } from "./softhsm.js";

const DAY = 86_400_000;

function partsOf(der: Uint8Array) {
  const [tbs, algorithm, signature] = children(der, readTlv(der, 0));
  return { tbs: Buffer.from(raw(der, tbs!)), algorithm: Buffer.from(raw(der, algorithm!)), signature: Buffer.from(content(der, signature!).subarray(1)) };
}

describe.skipIf(!(await available("softhsm2")))("hand-written certificate encoder with a PKCS#11 CA", () => {
  const tmp = makeTempDir("kp-tbs-p11-");
  let keyStore: Pkcs11KeyStore;
  const cas: CertificateAuthority[] = [];

  beforeAll(async () => {
    keyStore = new Pkcs11KeyStore({ ...initToken(tmp.path), sessions: 2 });
    const common = { keyStore, material: new FileCaMaterialStore(`${tmp.path}/material`), now: new Date(), organizationName: "KeyPortal", crlBaseUrl: "http://127.0.0.1:4000/crl" };
    cas.push(await loadOrCreateAuthority({ ...common, environment: Environment.MTF, keyAlgorithm: "EC-P256" }));
    cas.push(await loadOrCreateAuthority({ ...common, environment: Environment.PRODUCTION, keyAlgorithm: "RSA-3072" }));
  });

  afterAll(async () => {
    await keyStore?.close();
    tmp.cleanup();
  });

  it.each([0, 1])("CA %i: 48 leaves, 16 at a time, equal the library's TBSCertificate and verify", async (index) => {
    const ca = cas[index]!;
    const issuerKey = createPublicKey({ key: Buffer.from(ca.issuing.publicKey.rawData), format: "der", type: "spki" });
    const spkis = [
      generateKeyPairSync("ec", { namedCurve: "P-256" }),
      generateKeyPairSync("ec", { namedCurve: "P-384" }),
      generateKeyPairSync("rsa", { modulusLength: 2048 }),
    ].map((pair) => new Uint8Array(pair.publicKey.export({ type: "spki", format: "der" })));
    const profile = DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT];
    const now = new Date();
    const specs = Array.from({ length: 48 }, (_, i) => ({
      profile,
      subjectDer: nameDer([
        ["C", "GB"],
        ["O", "Acme Bank"],
        ["CN", `Client ${i}`],
      ]),
      spki: spkis[i % spkis.length]!,
      serialHex: newSerialHex(),
      notBefore: now,
      notAfter: new Date(now.getTime() + (1 + i) * DAY),
    }));
    const fast: Uint8Array[] = [];
    for (let i = 0; i < specs.length; i += 16) fast.push(...(await Promise.all(specs.slice(i, i + 16).map((spec) => ca.issue(spec)))));
    for (const [i, spec] of specs.entries()) {
      const a = partsOf(fast[i]!);
      const b = partsOf(await issueLeafCertificateWithLibrary({ ...spec, issuer: ca.issuer, crlUrl: ca.crlUrl, authorityInfoAccess: ca.authorityInfoAccess }));
      expect(a.tbs.equals(b.tbs), `certificate ${i}`).toBe(true);
      expect(a.algorithm.equals(b.algorithm)).toBe(true);
      const key = issuerKey.asymmetricKeyType === "ec" ? { key: issuerKey, dsaEncoding: "der" as const } : issuerKey;
      expect(nodeVerify("sha256", a.tbs, key, a.signature), `signature ${i}`).toBe(true);
    }
  });
});
