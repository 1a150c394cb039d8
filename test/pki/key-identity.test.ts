import { createHash, ECDH, generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encodeOid, sequence, tlv } from "../../src/pki/der.js";
import { canonicalKey, KeyEncodingError, spkiFingerprint } from "../../src/pki/key-identity.js";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const OID_EC = "1.2.840.10045.2.1";
const CURVE_OIDS = { "P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34", "P-521": "1.3.132.0.35" } as const;
const NODE_CURVES = { "P-256": "prime256v1", "P-384": "secp384r1", "P-521": "secp521r1" } as const;

function ecKey(curve: keyof typeof CURVE_OIDS): { spki: Uint8Array; point: Buffer } {
  const spki = new Uint8Array(generateKeyPairSync("ec", { namedCurve: curve }).publicKey.export({ format: "der", type: "spki" }));
  const n = { "P-256": 32, "P-384": 48, "P-521": 66 }[curve];
  return { spki, point: Buffer.from(spki.subarray(spki.length - (1 + 2 * n))) };
}
const ecSpki = (curve: keyof typeof CURVE_OIDS, point: Uint8Array) =>
  sequence(sequence(encodeOid(OID_EC), encodeOid(CURVE_OIDS[curve])), tlv(0x03, Uint8Array.of(0), point));

function rsaSpki(modulus: Uint8Array, exponent: Uint8Array, params: Uint8Array[] = [Uint8Array.of(5, 0)]) {
  return sequence(sequence(encodeOid("1.2.840.113549.1.1.1"), ...params), tlv(0x03, Uint8Array.of(0), sequence(tlv(0x02, modulus), tlv(0x02, exponent))));
}
const rsa = new Uint8Array(generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "der", type: "spki" }));
// 30 82 01 22 | AlgorithmIdentifier (15) | 03 82 01 0f 00 | 30 82 01 0a | 02 82 01 01 <modulus: 00 + 256 octets> | 02 03 01 00 01
const modulus = rsa.subarray(32, 289);
const bitString = rsa.subarray(19);

const refusal = (spki: Uint8Array): string => {
  try {
    canonicalKey(spki);
  } catch (e) {
    if (e instanceof KeyEncodingError) return e.message;
    throw e;
  }
  return "accepted";
};

describe("canonical key identity", () => {
  it("should keep a canonical key's bytes and report nothing canonicalized", () => {
    for (const spki of [rsa, ecKey("P-256").spki, ecKey("P-384").spki, ecKey("P-521").spki]) {
      const key = canonicalKey(spki);
      expect(Buffer.from(key.spki).equals(Buffer.from(spki))).toBe(true);
      expect(key.canonicalized).toEqual([]);
      expect(key.fingerprint).toBe(sha256(spki));
    }
  });

  for (const curve of ["P-256", "P-384", "P-521"] as const) {
    it(`should decompress compressed and hybrid ${curve} points to the uncompressed SPKI`, () => {
      const { spki, point } = ecKey(curve);
      const compressed = ECDH.convertKey(point, NODE_CURVES[curve], undefined, undefined, "compressed") as Buffer;
      const hybrid = ECDH.convertKey(point, NODE_CURVES[curve], undefined, undefined, "hybrid") as Buffer;
      for (const [form, bytes] of [["compressed EC point", compressed], ["hybrid EC point", hybrid]] as const) {
        const key = canonicalKey(ecSpki(curve, bytes));
        expect(Buffer.from(key.spki).equals(Buffer.from(spki))).toBe(true);
        expect(key.fingerprint).toBe(sha256(spki));
        expect(key.canonicalized).toEqual([form]);
      }
    });
  }

  it("should refuse EC points that are not on the curve, out of range, of the wrong length or with a false parity bit", () => {
    const { point } = ecKey("P-256");
    const offCurve = Buffer.from(point);
    offCurve[64]! ^= 1;
    expect(refusal(ecSpki("P-256", offCurve))).toBe("the EC point is not on its curve");
    const hybrid = ECDH.convertKey(point, "prime256v1", undefined, undefined, "hybrid") as Buffer;
    hybrid[0] = hybrid[0] === 6 ? 7 : 6;
    expect(refusal(ecSpki("P-256", hybrid))).toMatch(/does not match the parity/);
    // x + p encodes the same x in an illegal way; an all-FF x is not below p.
    const big = Buffer.concat([Buffer.of(2), Buffer.alloc(32, 0xff)]);
    expect(refusal(ecSpki("P-256", big))).toMatch(/x coordinate is not below the field prime/);
    expect(refusal(ecSpki("P-256", Buffer.of(0)))).toMatch(/point at infinity/);
    expect(refusal(ecSpki("P-256", point.subarray(0, 64)))).toMatch(/64 octets long; a full point on this curve is 65/);
    expect(refusal(ecSpki("P-256", Buffer.concat([Buffer.of(5), point.subarray(1)])))).toMatch(/unknown form octet 05/);
  });

  it("should canonicalize an RSA AlgorithmIdentifier without NULL and refuse other parameters", () => {
    expect(modulus[0]).toBe(0);
    expect(modulus.length).toBe(257);
    const exponent = Uint8Array.of(1, 0, 1);
    const noNull = canonicalKey(rsaSpki(modulus, exponent, []));
    expect(Buffer.from(noNull.spki).equals(Buffer.from(rsa))).toBe(true);
    expect(noNull.canonicalized).toEqual(["RSA AlgorithmIdentifier without NULL parameters"]);
    expect(refusal(rsaSpki(modulus, exponent, [encodeOid("1.2.3")]))).toMatch(/parameters other than NULL/);
  });

  it("should refuse non-DER RSA INTEGERs in strict mode and read them as their magnitude in lenient mode", () => {
    const exponent = Uint8Array.of(1, 0, 1);
    const cases: Array<[Uint8Array, Uint8Array, RegExp]> = [
      [Uint8Array.of(0, ...modulus), exponent, /RSA modulus INTEGER has a superfluous leading 00 octet/],
      [modulus.subarray(1), exponent, /RSA modulus is a negative INTEGER/],
      [modulus, Uint8Array.of(0, 1, 0, 1), /RSA public exponent INTEGER has a superfluous leading 00 octet/],
    ];
    for (const [m, e, message] of cases) {
      const spki = rsaSpki(m, e);
      expect(refusal(spki)).toMatch(message);
      expect(spkiFingerprint(spki)).toBe(sha256(rsa));
      expect(Buffer.from(canonicalKey(spki, { strict: false }).spki).equals(Buffer.from(rsa))).toBe(true);
    }
    expect(refusal(rsaSpki(Uint8Array.of(0xff, 0x80, ...modulus.subarray(2)), exponent))).toMatch(/superfluous leading FF octet/);
    expect(refusal(rsaSpki(Uint8Array.of(0), exponent))).toMatch(/RSA modulus is zero/);
  });

  it("should give an RSASSA-PSS key the identity of the same RSA key", () => {
    const pss = sequence(sequence(encodeOid("1.2.840.113549.1.1.10")), bitString);
    const key = canonicalKey(pss);
    expect(key.fingerprint).toBe(sha256(rsa));
    expect(Buffer.from(key.spki).equals(Buffer.from(pss))).toBe(true);
  });
});
