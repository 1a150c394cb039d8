import "reflect-metadata";
import { describe, expect, it } from "vitest";
import { createHash, generateKeyPairSync, webcrypto } from "node:crypto";
import { X509Crl } from "@peculiar/x509";
import { Environment, RevocationReason } from "../../src/kernel/domain.js";
import { ManualClock } from "../../src/kernel/clock.js";
import { describeKey, rfc4514, sha256Hex, spkiFingerprint } from "../../src/pki/bundle.js";
import { newSerialHex, nameDer } from "../../src/pki/issue.js";
import { crlToPem } from "../../src/pki/crl.js";
import { FileCaMaterialStore, loadOrCreateAuthority } from "../../src/pki/ca.js";
import { FileKeyStore } from "../../src/pki/keystore/index.js";
import { asBufferSource, encodeOid, sequence, tlv } from "../../src/pki/der.js";
import { makeTempDir } from "./helpers.js";

const spki = (type: "rsa" | "ec" | "ed25519", options: object) =>
  new Uint8Array(generateKeyPairSync(type as "rsa", options as { modulusLength: number }).publicKey.export({ type: "spki", format: "der" }));

describe("key and name helpers", () => {
  it("describes keys by family and size", () => {
    expect(describeKey(spki("rsa", { modulusLength: 2048 }))).toBe("RSA-2048");
    expect(describeKey(spki("ec", { namedCurve: "P-256" }))).toBe("EC-P256");
    expect(describeKey(spki("ec", { namedCurve: "P-384" }))).toBe("EC-P384");
    expect(describeKey(spki("ec", { namedCurve: "P-521" }))).toBe("EC-P521");
    expect(describeKey(spki("ed25519", {}))).toBe("Ed25519");
  });

  it("fingerprints a key as lowercase SHA-256 hex of its SPKI DER", () => {
    const key = spki("ec", { namedCurve: "P-256" });
    expect(spkiFingerprint(key)).toBe(createHash("sha256").update(key).digest("hex"));
    expect(sha256Hex(new TextEncoder().encode("abc"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("writes RFC 4514 strings last RDN first, with the special characters escaped", () => {
    expect(rfc4514(nameDer([["C", "GB"], ["O", "Acme Bank"], ["CN", "Acme Client"]]))).toBe("CN=Acme Client,O=Acme Bank,C=GB");
    expect(rfc4514(nameDer([["O", "Smith, Jones + Co"], ["CN", "#1 client "]]))).toBe("CN=\\#1 client\\ ,O=Smith\\, Jones \\+ Co");
    expect(rfc4514(nameDer([["O", "Société Générale"], ["CN", "a<b>;\"c\\"]]))).toBe('CN=a\\<b\\>\\;\\"c\\\\,O=Société Générale');
  });

  it("writes attributes without an RFC 4514 short name as OID=#hex", () => {
    const email = sequence(
      tlv(0x31, sequence(encodeOid("1.2.840.113549.1.9.1"), tlv(0x16, new TextEncoder().encode("a@b.example")))),
    );
    expect(rfc4514(email)).toBe(`1.2.840.113549.1.9.1=#160b${Buffer.from("a@b.example").toString("hex")}`);
  });

  it("makes 128-bit positive serials with a non-zero first octet", () => {
    const serials = new Set(Array.from({ length: 2000 }, () => newSerialHex()));
    expect(serials.size).toBe(2000);
    for (const s of serials) {
      expect(s).toMatch(/^[0-7][0-9a-f]{31}$/);
      expect(s.startsWith("00")).toBe(false);
    }
  });
});

describe("CRLs", () => {
  it("sorts entries, writes a reason code for each reason but UNSPECIFIED, and carries the CRL number", async () => {
    const tmp = makeTempDir("kp-crl-");
    try {
      const clock = new ManualClock("2026-05-01T00:00:00.000Z");
      const ca = await loadOrCreateAuthority({
        environment: Environment.PRODUCTION,
        keyStore: new FileKeyStore({ dir: `${tmp.path}/keys` }),
        material: new FileCaMaterialStore(`${tmp.path}/material`),
        now: clock.now(),
        keyAlgorithm: "EC-P256",
        organizationName: "KeyPortal",
        crlBaseUrl: "http://127.0.0.1:4000/crl",
      });
      const at = (iso: string) => new Date(iso);
      const input = {
        entries: [
          { serialHex: "3a01", revokedAt: at("2026-04-03T00:00:00Z"), reason: RevocationReason.SUPERSEDED },
          { serialHex: "1b02", revokedAt: at("2026-04-01T00:00:00Z"), reason: RevocationReason.KEY_COMPROMISE },
          { serialHex: "2c03", revokedAt: at("2026-04-02T00:00:00Z"), reason: RevocationReason.UNSPECIFIED },
        ],
        thisUpdate: clock.now(),
        nextUpdate: at("2026-05-08T00:00:00Z"),
        crlNumber: 300n,
      };
      const der = await ca.signCrl(input);
      const crl = new X509Crl(asBufferSource(der));
      expect(crl.entries.map((e) => [e.serialNumber, e.reason])).toEqual([
        ["1b02", 1],
        ["2c03", undefined],
        ["3a01", 4],
      ]);
      expect(crl.issuer).toBe(ca.issuing.subject);
      expect(crl.nextUpdate?.toISOString()).toBe("2026-05-08T00:00:00.000Z");
      const crlNumber = crl.getExtension("2.5.29.20");
      expect(Buffer.from(crlNumber!.value).toString("hex")).toBe("0202012c"); // INTEGER 300
      expect(await crl.verify({ publicKey: ca.issuing }, webcrypto as Crypto)).toBe(true);
      // Same input in another order, same CRL content (ECDSA signatures differ, the TBS does not).
      const again = new X509Crl(asBufferSource(await ca.signCrl({ ...input, entries: [...input.entries].reverse() })));
      expect(again.entries.map((e) => e.serialNumber)).toEqual(["1b02", "2c03", "3a01"]);
      expect(crlToPem(der)).toMatch(/^-----BEGIN X509 CRL-----\n[\s\S]+\n-----END X509 CRL-----\n$/);
    } finally {
      tmp.cleanup();
    }
  });
});
