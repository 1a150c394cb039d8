import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

const crypto = webcrypto as unknown as Crypto;

/** A PKCS#10 request for the organization's registered subject over a fresh P-256 key, made in-process (no openssl). */
export async function csrPem(org: { name: string; country: string }, commonName: string): Promise<string> {
  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"])) as CryptoKeyPair;
  const request = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ C: [org.country] }, { O: [org.name] }, { CN: [commonName] }], keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } },
    crypto,
  );
  return request.toString("pem");
}
