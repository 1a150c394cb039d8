import "reflect-metadata";
import { afterAll, describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import { Environment } from "../../src/kernel/domain.js";
import { ManualClock } from "../../src/kernel/clock.js";
import { FileCaMaterialStore, loadOrCreateAuthority, type LoadOrCreateAuthorityOptions } from "../../src/pki/ca.js";
import { FileKeyStore } from "../../src/pki/keystore/index.js";
import { makeTempDir } from "./helpers.js";

describe("loadOrCreateAuthority with file stores", () => {
  const tmp = makeTempDir("kp-ca-");
  afterAll(() => tmp.cleanup());
  const clock = new ManualClock("2026-03-01T12:00:00.000Z");
  let n = 0;

  function options(dir: string, environment = Environment.MTF): LoadOrCreateAuthorityOptions {
    return {
      environment,
      keyStore: new FileKeyStore({ dir: `${dir}/keys` }),
      material: new FileCaMaterialStore(`${dir}/material`),
      now: clock.now(),
      keyAlgorithm: "EC-P256",
      organizationName: "KeyPortal",
      crlBaseUrl: "http://127.0.0.1:4000/crl/",
    };
  }

  it("agrees on one hierarchy when several instances start at the same moment", async () => {
    const dir = `${tmp.path}/race-${n++}`;
    const cas = await Promise.all(Array.from({ length: 4 }, () => loadOrCreateAuthority(options(dir))));
    for (const ca of cas) expect(ca.chainPem).toBe(cas[0]!.chainPem);
    expect(readdirSync(`${dir}/keys`).sort()).toEqual(["ca-mtf-issuing.key", "ca-mtf-root.key"]);
    expect(readdirSync(`${dir}/material`).sort()).toEqual(["ca-mtf-issuing.pem", "ca-mtf-root.pem"]);
  });

  it("dates the hierarchy from the injected time, not the wall clock", async () => {
    const ca = await loadOrCreateAuthority(options(`${tmp.path}/time-${n++}`));
    expect(ca.root.notBefore.toISOString()).toBe("2026-03-01T12:00:00.000Z");
    expect(ca.root.notAfter.toISOString()).toBe("2046-03-01T12:00:00.000Z");
    expect(ca.issuing.notAfter.toISOString()).toBe("2036-03-01T12:00:00.000Z");
    expect(ca.crlUrl).toBe("http://127.0.0.1:4000/crl/MTF.crl");
  });

  it("keeps MTF and PRODUCTION keys and certificates apart in the same stores", async () => {
    const dir = `${tmp.path}/both-${n++}`;
    const mtf = await loadOrCreateAuthority(options(dir, Environment.MTF));
    const prod = await loadOrCreateAuthority(options(dir, Environment.PRODUCTION));
    expect(mtf.root.subject).toContain("KeyPortal MTF Root CA");
    expect(prod.root.subject).toContain("KeyPortal PRODUCTION Root CA");
    expect(Buffer.from(mtf.issuing.publicKey.rawData).equals(Buffer.from(prod.issuing.publicKey.rawData))).toBe(false);
    expect(readdirSync(`${dir}/keys`).sort()).toEqual([
      "ca-mtf-issuing.key",
      "ca-mtf-root.key",
      "ca-production-issuing.key",
      "ca-production-root.key",
    ]);
  });

  it("refuses to start when a stored CA certificate's key is missing", async () => {
    const dir = `${tmp.path}/lost-${n++}`;
    await loadOrCreateAuthority(options(dir));
    const lost = { ...options(dir), keyStore: new FileKeyStore({ dir: `${dir}/other-keys` }) };
    await expect(loadOrCreateAuthority(lost)).rejects.toThrow(/no key ca-mtf-root with its public key/);
  });
});
