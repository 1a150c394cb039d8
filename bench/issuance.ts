/**
 * Issuance throughput: the full CA path (profile → TBS → signature → DER)
 * against the bare WebCrypto signature over a TBS of the same size, side by
 * side in one run, so the ratio shows what the ASN.1 layer costs.
 */
import { webcrypto } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CertificateKind, Environment } from "../src/domain.js";
import { FileCaMaterialStore, loadOrCreateAuthority } from "../src/pki/ca.js";
import { parseCsr } from "../src/pki/csr.js";
import { newSerialHex } from "../src/pki/issue.js";
import { FileKeyStore } from "../src/pki/keystore.js";
import { DEFAULT_PROFILES } from "../src/pki/profiles.js";
import { measure, type BenchResult } from "./measure.js";
import * as x509 from "@peculiar/x509";

const crypto = webcrypto as unknown as Crypto;

export async function issuanceBench(count: number): Promise<BenchResult[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-issue-"));
  try {
    const keyStore = new FileKeyStore({ dir: path.join(dir, "keys") });
    const now = new Date();
    const ca = await loadOrCreateAuthority({
      environment: Environment.MTF,
      keyStore,
      material: new FileCaMaterialStore(path.join(dir, "ca")),
      now,
      keyAlgorithm: "EC-P256",
      organizationName: "KeyPortal Bench",
      crlBaseUrl: "http://127.0.0.1:4000/crl",
    });
    const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: "C=GB, O=Bench Bank, CN=Bench Client", keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } },
      crypto,
    );
    const pem = csr.toString("pem");
    const profile = DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT];
    const parsed = await parseCsr(pem, profile, { organizationName: "Bench Bank", country: "GB" });
    const notAfter = new Date(now.getTime() + 365 * 86_400_000);
    const sample = await ca.issue({ profile, subjectDer: parsed.subjectDer, spki: parsed.spki, serialHex: newSerialHex(), notBefore: now, notAfter });
    const tbsSized = new Uint8Array(sample.length - 72);

    const signatureOnly = await measure("signature only (WebCrypto ECDSA P-256 over a TBS-sized buffer)", count, async () => {
      await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, ca.issuer.keys.privateKey, tbsSized);
    });
    const issue = await measure("issue a certificate (CertificateAuthority.issue, file key)", count, async () => {
      await ca.issue({ profile, subjectDer: parsed.subjectDer, spki: parsed.spki, serialHex: newSerialHex(), notBefore: now, notAfter });
    });
    const check = await measure("parse and check a CSR (parseCsr)", count, async () => {
      await parseCsr(pem, profile, { organizationName: "Bench Bank", country: "GB" });
    });
    await keyStore.close();
    return [signatureOnly, issue, check];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
