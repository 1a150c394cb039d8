/**
 * Re-encodings of a key inside a CSR: OpenSSL makes the ones it can
 * (`openssl ec -conv_form`); the rest are built here by replacing the SPKI
 * in an OpenSSL-made CertificationRequestInfo and re-signing it with the
 * key, so that proof of possession still holds.
 */
import { createPrivateKey, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { children, content, encodeOid, raw, readTlv, sequence, tlv } from "../../src/pki/der.js";
import { makeCsr, openssl, pemBody, toPem, type TestKey } from "../pki/helpers.js";

export type Reencoding = "ec-compressed" | "ec-hybrid" | "rsa-no-null" | "rsa-modulus-extra-00" | "rsa-modulus-no-sign-octet";

/** The SPKI DER of a private key file, as OpenSSL writes it (uncompressed point, NULL parameters): the canonical form. */
export function canonicalSpkiOf(keyPath: string): Buffer {
  return Buffer.from(openssl(["pkey", "-in", keyPath, "-pubout", "-outform", "DER"]), "latin1");
}

/** A CSR whose CertificationRequestInfo carries `spki` instead of the key's own encoding, signed with the key. */
export function csrWithSpki(keyPath: string, subject: string, spki: Uint8Array): string {
  const der = new Uint8Array(pemBody(makeCsr(keyPath, subject)));
  const outer = readTlv(der, 0);
  const [info, algorithm] = children(der, outer);
  const fields = children(der, info!);
  const newInfo = sequence(raw(der, fields[0]!), raw(der, fields[1]!), spki, ...fields.slice(3).map((f) => raw(der, f)));
  const key = createPrivateKey(readFileSync(keyPath));
  const signature = sign("sha256", newInfo, key.asymmetricKeyType === "ec" ? { key, dsaEncoding: "der" } : key);
  return toPem(sequence(newInfo, raw(der, algorithm!), tlv(0x03, Uint8Array.of(0), signature)), "CERTIFICATE REQUEST");
}

/** The RSA SPKI rebuilt with a modulus content transformed by `modulus` and/or without the NULL parameters. */
function rsaSpki(canonical: Uint8Array, opts: { withNull: boolean; modulus?: (content: Uint8Array) => Uint8Array }): Uint8Array {
  const top = readTlv(canonical, 0);
  const [, bits] = children(canonical, top);
  const keyDer = content(canonical, bits!).subarray(1);
  const [modulus, exponent] = children(keyDer, readTlv(keyDer, 0));
  const modulusContent = content(keyDer, modulus!);
  const rsaKey = sequence(tlv(0x02, opts.modulus ? opts.modulus(modulusContent) : modulusContent), raw(keyDer, exponent!));
  const algorithm = opts.withNull ? sequence(encodeOid("1.2.840.113549.1.1.1"), Uint8Array.of(0x05, 0x00)) : sequence(encodeOid("1.2.840.113549.1.1.1"));
  return sequence(algorithm, tlv(0x03, Uint8Array.of(0), rsaKey));
}

/** The key type a re-encoding applies to. */
export const keyKindOf = (reencoding: Reencoding): TestKey => (reencoding.startsWith("ec-") ? "p256" : "rsa2048");

/** A CSR for the key in `keyPath`, its key encoded the given way. */
export function reencodedCsr(dir: string, keyPath: string, subject: string, reencoding: Reencoding): string {
  switch (reencoding) {
    case "ec-compressed":
    case "ec-hybrid": {
      const converted = join(dir, `${basename(keyPath)}.${reencoding}.pem`);
      openssl(["ec", "-in", keyPath, "-conv_form", reencoding === "ec-compressed" ? "compressed" : "hybrid", "-out", converted]);
      return makeCsr(converted, subject);
    }
    case "rsa-no-null":
      return csrWithSpki(keyPath, subject, rsaSpki(canonicalSpkiOf(keyPath), { withNull: false }));
    case "rsa-modulus-extra-00":
      return csrWithSpki(keyPath, subject, rsaSpki(canonicalSpkiOf(keyPath), { withNull: true, modulus: (m) => Uint8Array.of(0, ...m) }));
    case "rsa-modulus-no-sign-octet":
      return csrWithSpki(keyPath, subject, rsaSpki(canonicalSpkiOf(keyPath), { withNull: true, modulus: (m) => m.subarray(1) }));
  }
}

/** The SPKI inside a CSR PEM. */
export function csrSpki(pem: string): Uint8Array {
  const der = new Uint8Array(pemBody(pem));
  const [info] = children(der, readTlv(der, 0));
  return raw(der, children(der, info!)[2]!);
}
