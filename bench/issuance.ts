/**
 * Issuance throughput, side by side in one process: the bare WebCrypto
 * signature over a TBS-sized buffer (the floor), the @peculiar/x509 library
 * path that production used before (test/pki/library-path.ts, kept as the
 * test oracle), and the production path (CertificateAuthority.issue, DER
 * written by src/pki/tbs.ts). Each one after the other and with 16 issuances
 * in flight, for an EC-P256 and an RSA-3072 issuing CA (file key store).
 * A stub signer that returns a fixed signature at once isolates what the
 * encoding itself costs on each path.
 */
import { webcrypto } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CertificateKind, Environment } from "../src/kernel/domain.js";
import { FileCaMaterialStore, loadOrCreateAuthority, type CaKeyAlgorithm, type CertificateAuthority } from "../src/pki/ca.js";
import { parseCsr } from "../src/pki/csr.js";
import { children, readTlv } from "../src/pki/der.js";
import { issueLeafCertificate, newSerialHex, type IssuerRef } from "../src/pki/issue.js";
import { FileKeyStore } from "../src/pki/keystore/index.js";
import { DEFAULT_PROFILES } from "../src/pki/profiles.js";
import { issueLeafCertificateWithLibrary } from "../test/pki/library-path.js";
import { measure, measureConcurrent, medianRound, type BenchResult } from "./measure.js";
import * as x509 from "@peculiar/x509";

const crypto = webcrypto as unknown as Crypto;
const CONCURRENCY = 16;

export interface BenchSection {
  title: string;
  results: BenchResult[];
  baseline: BenchResult;
  /** Lines printed under the section (ratios between its results). */
  notes: string[];
}

/** A signer (and WebCrypto, for the library path) whose sign answers at once with a well-formed dummy signature of the key's size: encoding cost only. */
function stubSigner(issuer: IssuerRef, signatureLength: number): IssuerRef {
  const signature = new Uint8Array(signatureLength).fill(0x5a);
  const subtle = { sign: async () => signature.buffer.slice(0) };
  // Only sign is reached on either path once the issuer's keys exist: the signer port for tbs.ts, subtle.sign for the library.
  return { ...issuer, crypto: { subtle } as unknown as Crypto, signer: { sign: async () => signature.slice() } };
}

const rate = (a: BenchResult, b: BenchResult): string => (a.perSecond / b.perSecond).toFixed(1);

async function caSection(ca: CertificateAuthority, label: CaKeyAlgorithm, count: number, rounds: number, pem: string): Promise<BenchSection[]> {
  const profile = DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT];
  const parsed = await parseCsr(pem, profile, { organizationName: "Bench Bank", country: "GB" });
  const now = new Date();
  const notAfter = new Date(now.getTime() + 365 * 86_400_000);
  const spec = () => ({ profile, subjectDer: parsed.subjectDer, spki: parsed.spki, serialHex: newSerialHex(), notBefore: now, notAfter });
  const sample = await ca.issue(spec());
  const tbs = children(sample, readTlv(sample, 0))[0]!;
  const tbsSized = new Uint8Array(tbs.end - tbs.start);
  const signParams = label === "EC-P256" ? { name: "ECDSA", hash: "SHA-256" } : { name: "RSASSA-PKCS1-v1_5" };
  const sign = () => ca.issuer.signer.sign(ca.issuer.keys.privateKey, signParams, tbsSized);
  const library = () => issueLeafCertificateWithLibrary({ ...spec(), issuer: ca.issuer, crlUrl: ca.crlUrl });
  const fast = () => ca.issue(spec());
  // The library needs the fast path's count / 10 to run about as long; RSA-3072 signatures (~1.5 ms) bound both.
  const slow = label === "EC-P256" ? count : Math.max(50, Math.round(count / 2));
  const quick = label === "EC-P256" ? count * 10 : slow;
  const warm = (n: number) => Math.min(n, 500);

  const sections: BenchSection[] = [];
  for (const concurrency of [1, CONCURRENCY]) {
    const mode = concurrency === 1 ? "sequential" : `${concurrency} concurrent`;
    const results: Record<"signature" | "library" | "fast", BenchResult[]> = { signature: [], library: [], fast: [] };
    for (let round = 0; round < rounds; round++) {
      results.signature.push(await measureConcurrent(`signature only (WebCrypto, ${label})`, quick, concurrency, sign, warm(quick)));
      results.library.push(await measureConcurrent(`library path (@peculiar/x509 X509CertificateGenerator)`, slow, concurrency, library, warm(slow)));
      results.fast.push(await measureConcurrent(`fast path (CertificateAuthority.issue, tbs.ts)`, quick, concurrency, fast, warm(quick)));
    }
    const signature = medianRound(results.signature);
    const lib = medianRound(results.library);
    const ours = medianRound(results.fast);
    sections.push({
      title: `Issuance, ${label} issuing CA, ${mode}`,
      results: [signature, lib, ours],
      baseline: signature,
      notes: [
        `fast path / library path: ${rate(ours, lib)}x the certificates per second`,
        `fast path / bare signature: ${((ours.perSecond / signature.perSecond) * 100).toFixed(0)}% of the signature rate`,
      ],
    });
  }

  // Encoding alone: the same two paths with a signer that costs nothing.
  const stub = stubSigner(ca.issuer, label === "EC-P256" ? 64 : 384);
  const encodeRounds: Record<"library" | "fast", BenchResult[]> = { library: [], fast: [] };
  for (let round = 0; round < rounds; round++) {
    encodeRounds.library.push(
      await measure("library path, stub signer", slow, () => issueLeafCertificateWithLibrary({ ...spec(), issuer: stub, crlUrl: ca.crlUrl }), warm(slow)),
    );
    encodeRounds.fast.push(await measure("fast path, stub signer", quick, () => issueLeafCertificate({ ...spec(), issuer: stub, crlUrl: ca.crlUrl }), warm(quick)));
  }
  const libraryEncode = medianRound(encodeRounds.library);
  const fastEncode = medianRound(encodeRounds.fast);
  sections.push({
    title: `Encoding only (no signature), ${label} issuing CA, sequential`,
    results: [libraryEncode, fastEncode],
    baseline: libraryEncode,
    notes: [`per certificate: library ${(1000 / libraryEncode.perSecond).toFixed(3)} ms, fast ${(1000 / fastEncode.perSecond).toFixed(3)} ms (${rate(fastEncode, libraryEncode)}x)`],
  });
  return sections;
}

/**
 * `count` is the library path's number of certificates per measurement (the
 * fast path and the signature run ten times as many with an EC CA); each
 * measurement is repeated `rounds` times, interleaved, and the median reported.
 */
export async function issuanceBench(count: number, rounds = 3): Promise<BenchSection[]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-issue-"));
  try {
    const keyStore = new FileKeyStore({ dir: path.join(dir, "keys") });
    const material = new FileCaMaterialStore(path.join(dir, "ca"));
    const common = { keyStore, material, now: new Date(), organizationName: "KeyPortal Bench", crlBaseUrl: "http://127.0.0.1:4000/crl" };
    const mtf = await loadOrCreateAuthority({ ...common, environment: Environment.MTF, keyAlgorithm: "EC-P256" });
    const prod = await loadOrCreateAuthority({ ...common, environment: Environment.PRODUCTION, keyAlgorithm: "RSA-3072" });

    const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create(
      { name: "C=GB, O=Bench Bank, CN=Bench Client", keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } },
      crypto,
    );
    const pem = csr.toString("pem");

    const sections = [...(await caSection(mtf, "EC-P256", count, rounds, pem)), ...(await caSection(prod, "RSA-3072", count, rounds, pem))];
    const profile = DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT];
    const check = await measure("parse and check a CSR (parseCsr)", count, async () => {
      await parseCsr(pem, profile, { organizationName: "Bench Bank", country: "GB" });
    });
    sections.push({ title: "CSR checking", results: [check], baseline: check, notes: [] });
    await keyStore.close();
    return sections;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
