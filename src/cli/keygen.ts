import "reflect-metadata";
import { webcrypto } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import * as x509 from "@peculiar/x509";

export type CliKeyType = "ec-p256" | "ec-p384" | "rsa-2048" | "rsa-3072" | "rsa-4096";
export const KEY_TYPES: CliKeyType[] = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"];

const crypto = webcrypto as unknown as Crypto;

function algorithmOf(type: CliKeyType): { generate: RsaHashedKeyGenParams | EcKeyGenParams; sign: Algorithm | EcdsaParams } {
  switch (type) {
    case "ec-p256":
      return { generate: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams };
    case "ec-p384":
      return { generate: { name: "ECDSA", namedCurve: "P-384" }, sign: { name: "ECDSA", hash: "SHA-384" } as EcdsaParams };
    default: {
      const bits = Number(type.slice(4));
      return {
        generate: { name: "RSASSA-PKCS1-v1_5", modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
        sign: { name: "RSASSA-PKCS1-v1_5" },
      };
    }
  }
}

export interface SubjectInput {
  commonName: string;
  organization: string;
  country: string;
  organizationalUnit?: string;
}

/**
 * Makes a key pair and a PKCS#10 request on this machine. The private key is
 * written here (PKCS#8 PEM, mode 0600, never overwriting a file) and never sent anywhere.
 */
export async function createKeyAndCsr(opts: { keyType: CliKeyType; subject: SubjectInput; keyPath: string; csrPath: string }): Promise<{ csrPem: string }> {
  const { generate, sign } = algorithmOf(opts.keyType);
  const keys = (await crypto.subtle.generateKey(generate, true, ["sign", "verify"])) as CryptoKeyPair;
  const name: x509.JsonName = [{ C: [opts.subject.country] }, { O: [opts.subject.organization] }];
  if (opts.subject.organizationalUnit) name.push({ OU: [opts.subject.organizationalUnit] });
  name.push({ CN: [opts.subject.commonName] });
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name, keys, signingAlgorithm: sign }, crypto);
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = x509.PemConverter.encode(pkcs8, "PRIVATE KEY");
  const csrPem = csr.toString("pem");
  // Exclusive create: an existing key is never overwritten (it may be the only copy).
  const handle = await fs.open(opts.keyPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(`${keyPem}\n`);
  } finally {
    await handle.close();
  }
  await fs.writeFile(opts.csrPath, `${csrPem}\n`, { flag: "wx", mode: 0o644 });
  return { csrPem };
}
