/**
 * The issuance suite, run once per key store (files, and PKCS#11 on SoftHSM2):
 * CA hierarchies, the three certificate kinds checked by openssl, a real mTLS
 * handshake, CMS with the issued keys, CRLs, and separation of environments.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { X509Certificate } from "@peculiar/x509";
import { CertificateKind, Environment, RevocationReason } from "../../src/kernel/domain.js";
import { systemClock } from "../../src/kernel/clock.js";
import { DomainError } from "../../src/kernel/errors.js";
import { FileCaMaterialStore, loadOrCreateAuthority, type CertificateAuthority } from "../../src/pki/ca.js";
import { parseCsr } from "../../src/pki/csr.js";
import { DEFAULT_PROFILES } from "../../src/pki/profiles.js";
import { issueServerCertificate, nameDer, newSerialHex } from "../../src/pki/issue.js";
import { crlToPem } from "../../src/pki/crl.js";
import { certificateToPem, chainPem, pkcs7CertsOnly } from "../../src/pki/bundle.js";
import type { KeyStore } from "../../src/pki/keystore/index.js";
import { asBufferSource, children, readTlv, raw } from "../../src/pki/der.js";
import { parseSpki } from "../../src/pki/spki.js";
import {
  freePort,
  generateKey,
  makeCsr,
  makeTempDir,
  openssl,
  opensslResult,
  pemBody,
  sClient,
  spawnOpenssl,
  writeFile,
} from "./helpers.js";

const ORG = { organizationName: "Acme Bank", country: "GB" };
const DAY = 86_400_000;

/** The subject Name TLV of a certificate, as bytes. */
function certificateSubjectDer(der: Uint8Array): Uint8Array {
  const cert = readTlv(der, 0);
  const tbs = children(der, cert)[0]!;
  const fields = children(der, tbs);
  const offset = fields[0]!.tag === 0xa0 ? 1 : 0; // [0] version
  return raw(der, fields[offset + 4]!);
}

/** The TBSCertificate bytes of a certificate. */
function tbsOf(der: Uint8Array): Buffer {
  const cert = readTlv(der, 0);
  return Buffer.from(raw(der, children(der, cert)[0]!));
}

export function defineIssuanceSuite(label: string, makeKeyStore: (dir: string) => Promise<KeyStore>): void {
  describe(`issuance with ${label}`, () => {
    const tmp = makeTempDir("kp-issue-");
    let keyStore: KeyStore;
    let mtf: CertificateAuthority;
    let prod: CertificateAuthority;
    const files: Record<string, string> = {};
    const children_: ChildProcess[] = [];
    const now = new Date(systemClock.now().getTime() - 60_000); // openssl checks against the wall clock

    beforeAll(async () => {
      keyStore = await makeKeyStore(tmp.path);
      const material = new FileCaMaterialStore(`${tmp.path}/material`);
      const common = { keyStore, material, now, organizationName: "KeyPortal", crlBaseUrl: "http://127.0.0.1:4000/crl" };
      mtf = await loadOrCreateAuthority({ ...common, environment: Environment.MTF, keyAlgorithm: "EC-P256" });
      prod = await loadOrCreateAuthority({ ...common, environment: Environment.PRODUCTION, keyAlgorithm: "RSA-3072" });
      for (const [name, ca] of [
        ["mtf", mtf],
        ["prod", prod],
      ] as const) {
        files[`${name}-root`] = writeFile(tmp.path, `${name}-root.pem`, certificateToPem(new Uint8Array(ca.root.rawData)));
        files[`${name}-issuing`] = writeFile(tmp.path, `${name}-issuing.pem`, certificateToPem(new Uint8Array(ca.issuing.rawData)));
        files[`${name}-chain`] = writeFile(tmp.path, `${name}-chain.pem`, ca.chainPem);
      }
      files.rsa = generateKey(tmp.path, "rsa2048");
      files.p256 = generateKey(tmp.path, "p256");
      files.serverKey = generateKey(tmp.path, "p256");
    });

    afterAll(async () => {
      for (const child of children_) child.kill("SIGKILL");
      await keyStore?.close();
      tmp.cleanup();
    });

    async function issue(ca: CertificateAuthority, kind: CertificateKind, keyPath: string, options: { days?: number; serialHex?: string } = {}) {
      const profile = DEFAULT_PROFILES[kind];
      const csr = await parseCsr(makeCsr(keyPath, "/C=GB/O=Acme Bank/OU=Payments/CN=Acme Client", "-sha256", ["-addext", "subjectAltName=DNS:evil.example"]), profile, ORG);
      const serialHex = options.serialHex ?? newSerialHex();
      const der = await ca.issue({
        profile,
        subjectDer: csr.subjectDer,
        spki: csr.spki,
        serialHex,
        notBefore: now,
        notAfter: new Date(now.getTime() + (options.days ?? profile.defaultValidityDays) * DAY),
      });
      const path = writeFile(tmp.path, `${kind}-${serialHex}.pem`, certificateToPem(der));
      return { der, path, csr, serialHex };
    }

    it("creates separate MTF and PRODUCTION hierarchies with the specified names, constraints and lifetimes", async () => {
      expect(mtf.root.subject).toBe("C=US, O=KeyPortal, CN=KeyPortal MTF Root CA");
      expect(mtf.issuing.subject).toBe("C=US, O=KeyPortal, CN=KeyPortal MTF Issuing CA");
      expect(prod.root.subject).toBe("C=US, O=KeyPortal, CN=KeyPortal PRODUCTION Root CA");
      expect(Buffer.from(mtf.root.publicKey.rawData).equals(Buffer.from(prod.root.publicKey.rawData))).toBe(false);
      const rootText = openssl(["x509", "-in", files["mtf-root"]!, "-noout", "-text"]);
      expect(rootText).toMatch(/Basic Constraints: critical\s+CA:TRUE\n/);
      expect(rootText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
      const issuingText = openssl(["x509", "-in", files["prod-issuing"]!, "-noout", "-text"]);
      expect(issuingText).toMatch(/CA:TRUE, pathlen:0/);
      expect(issuingText).toContain("sha256WithRSAEncryption");
      // The issuing CA says where its revocation is published (the root's CRL) and where its issuer is.
      expect(issuingText).toContain("URI:http://127.0.0.1:4000/crl/PRODUCTION-root.crl");
      expect(issuingText).toMatch(/CA Issuers - URI:http:\/\/127\.0\.0\.1:4000\/ca\/PRODUCTION\/root\.crt/);
      for (const ca of [files["mtf-root"]!, files["mtf-issuing"]!, files["prod-root"]!, files["prod-issuing"]!]) {
        // A CA's key signs certificates and CRLs, nothing else (CA/B Forum: e_cabf_ecc_allowed_key_usages).
        expect(openssl(["x509", "-in", ca, "-noout", "-ext", "keyUsage"])).toMatch(/critical\n\s+Certificate Sign, CRL Sign\n?$/);
      }
      expect(Math.round((mtf.root.notAfter.getTime() - mtf.root.notBefore.getTime()) / (365.25 * DAY))).toBe(20);
      expect(Math.round((mtf.issuing.notAfter.getTime() - mtf.issuing.notBefore.getTime()) / (365.25 * DAY))).toBe(10);
      expect(openssl(["verify", "-x509_strict", "-CAfile", files["mtf-root"]!, files["mtf-issuing"]!])).toContain("OK");
      expect(mtf.crlUrl).toBe("http://127.0.0.1:4000/crl/MTF.crl");
      expect(prod.crlUrl).toBe("http://127.0.0.1:4000/crl/PRODUCTION.crl");
      // The CA signs through handles only: its private keys cannot be exported.
      expect(mtf.issuer.keys.privateKey.extractable).toBe(false);
      await expect(keyStore.crypto.subtle.exportKey("pkcs8", prod.issuer.keys.privateKey)).rejects.toThrow();
    });

    it("loads the same CA certificates and keys when started again", async () => {
      const material = new FileCaMaterialStore(`${tmp.path}/material`);
      const again = await loadOrCreateAuthority({
        environment: Environment.MTF,
        keyStore,
        material,
        now: new Date(now.getTime() + 10 * DAY),
        keyAlgorithm: "EC-P256",
        organizationName: "KeyPortal",
        crlBaseUrl: "http://127.0.0.1:4000/crl",
      });
      expect(again.chainPem).toBe(mtf.chainPem);
      expect(again.issuing.serialNumber).toBe(mtf.issuing.serialNumber);
    });

    it.each([
      // A TLS client only signs: no keyEncipherment even for RSA (zlint e_key_usage_and_extended_key_usage_inconsistent).
      [CertificateKind.MTLS_CLIENT, "rsa", /Key Usage: critical\s+Digital Signature\n/, /Extended Key Usage:\s+TLS Web Client Authentication\n/],
      [CertificateKind.MTLS_CLIENT, "p256", /Key Usage: critical\s+Digital Signature\n/, /Extended Key Usage:\s+TLS Web Client Authentication\n/],
      [CertificateKind.SIGNING, "p256", /Key Usage: critical\s+Digital Signature, Non Repudiation\n/, /Extended Key Usage:\s+E-mail Protection, (1\.3\.6\.1\.5\.5\.7\.3\.36|Document Signing)\n/],
      [CertificateKind.SIGNING, "rsa", /Key Usage: critical\s+Digital Signature, Non Repudiation\n/, /Extended Key Usage:\s+E-mail Protection, (1\.3\.6\.1\.5\.5\.7\.3\.36|Document Signing)\n/],
      [CertificateKind.ENCRYPTION, "rsa", /Key Usage: critical\s+Key Encipherment, Data Encipherment\n/, /Extended Key Usage:\s+E-mail Protection\n/],
    ] as const)("issues a %s certificate for a %s key that openssl verifies, with exactly the profile's extensions", async (kind, key, keyUsage, eku) => {
      for (const [ca, env] of [
        [mtf, "mtf"],
        [prod, "prod"],
      ] as const) {
        const { der, path, csr, serialHex } = await issue(ca, kind, files[key]!);
        const verified = openssl(["verify", "-x509_strict", "-CAfile", files[`${env}-root`]!, "-untrusted", files[`${env}-issuing`]!, path]);
        expect(verified).toContain(": OK");
        const text = openssl(["x509", "-in", path, "-noout", "-text"]);
        expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE\n/);
        expect(text).toMatch(keyUsage);
        expect(text).toMatch(eku);
        expect(text).toContain(`URI:${ca.crlUrl}`);
        expect(text).toContain(`OCSP - URI:${ca.urls.ocsp}`);
        expect(text).toContain(`CA Issuers - URI:${ca.urls.issuingCertificate}`);
        expect(text).toContain(ca === mtf ? "ecdsa-with-SHA256" : "sha256WithRSAEncryption");
        // Nothing from the CSR but subject and key: its subjectAltName request is not honoured.
        expect(text).not.toContain("evil.example");
        const cert = new X509Certificate(asBufferSource(der));
        expect(cert.extensions.map((e) => e.type)).toEqual([
          "2.5.29.19",
          "2.5.29.15",
          "2.5.29.37",
          "2.5.29.14",
          "2.5.29.35",
          "2.5.29.31",
          "1.3.6.1.5.5.7.1.1",
        ]);
        expect(cert.serialNumber).toBe(serialHex);
        expect(Buffer.from(certificateSubjectDer(der)).equals(Buffer.from(csr.subjectDer))).toBe(true);
        expect(Buffer.from(cert.publicKey.rawData).equals(Buffer.from(csr.spki))).toBe(true);
        // subjectKeyIdentifier: SHA-1 of the subjectPublicKey bits; authorityKeyIdentifier: the issuing CA's.
        const bits = parseSpki(csr.spki).subjectPublicKey;
        expect(text.replace(/\s+/g, "")).toContain(
          `SubjectKeyIdentifier:${createHash("sha1").update(Buffer.from(bits)).digest("hex").toUpperCase().match(/../g)!.join(":")}`,
        );
        const issuingSki = openssl(["x509", "-in", files[`${env}-issuing`]!, "-noout", "-ext", "subjectKeyIdentifier"]).split("\n")[1]!.trim();
        expect(text).toContain(issuingSki);
      }
    });

    it("produces the same TBSCertificate for the same inputs", async () => {
      const profile = DEFAULT_PROFILES[CertificateKind.SIGNING];
      const csr = await parseCsr(makeCsr(files.p256!, "/C=GB/O=Acme Bank/CN=Acme Client"), profile, ORG);
      const spec = { profile, subjectDer: csr.subjectDer, spki: csr.spki, serialHex: newSerialHex(), notBefore: now, notAfter: new Date(now.getTime() + 30 * DAY) };
      const [a, b] = [await mtf.issue(spec), await mtf.issue(spec)];
      expect(tbsOf(a).equals(tbsOf(b))).toBe(true);
    });

    it("refuses a validity longer than the profile's maximum", async () => {
      const err = await issue(mtf, CertificateKind.MTLS_CLIENT, files.p256!, { days: 826 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DomainError);
      expect((err as DomainError).reason).toBe("VALIDITY_TOO_LONG");
    });

    it("issues certificates that do not verify against the other environment's chain", async () => {
      const { path } = await issue(mtf, CertificateKind.MTLS_CLIENT, files.p256!);
      const result = opensslResult(["verify", "-CAfile", files["prod-root"]!, "-untrusted", files["prod-issuing"]!, path]);
      expect(result.ok).toBe(false);
      expect(result.stdout + result.stderr).toMatch(/unable to get local issuer certificate/);
    });

    it("bundles leaf, issuing and root as a PEM chain and a PKCS#7 that openssl reads", async () => {
      const { der } = await issue(prod, CertificateKind.SIGNING, files.rsa!);
      const pem = chainPem(der, prod);
      expect(pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
      const p7 = writeFile(tmp.path, "bundle.p7b", pkcs7CertsOnly([der, new Uint8Array(prod.issuing.rawData), new Uint8Array(prod.root.rawData)]));
      const printed = openssl(["pkcs7", "-inform", "DER", "-in", p7, "-print_certs", "-noout"]);
      expect(printed).toContain("subject=C = GB, O = Acme Bank, OU = Payments, CN = Acme Client");
      expect(printed).toContain("subject=C = US, O = KeyPortal, CN = KeyPortal PRODUCTION Issuing CA");
      expect(printed).toContain("subject=C = US, O = KeyPortal, CN = KeyPortal PRODUCTION Root CA");
    });

    it("lets a SIGNING certificate's key sign CMS that openssl cms -verify accepts against the chain", async () => {
      const { path } = await issue(prod, CertificateKind.SIGNING, files.rsa!);
      const data = writeFile(tmp.path, "message.txt", "settlement file 42\n");
      const signed = `${tmp.path}/message.p7s`;
      openssl(["cms", "-sign", "-binary", "-nodetach", "-in", data, "-signer", path, "-inkey", files.rsa!, "-outform", "DER", "-out", signed]);
      const out = opensslResult(["cms", "-verify", "-binary", "-inform", "DER", "-in", signed, "-CAfile", files["prod-chain"]!]);
      expect(out.stderr + out.stdout).toContain("Verification successful");
      expect(out.stdout).toContain("settlement file 42");
    });

    it("lets openssl encrypt CMS to an ENCRYPTION certificate that its key decrypts", async () => {
      const { path } = await issue(mtf, CertificateKind.ENCRYPTION, files.rsa!);
      const data = writeFile(tmp.path, "secret.txt", "zone master key component\n");
      const enc = `${tmp.path}/secret.p7m`;
      openssl(["cms", "-encrypt", "-aes256", "-binary", "-in", data, "-outform", "DER", "-out", enc, path]);
      const out = openssl(["cms", "-decrypt", "-binary", "-inform", "DER", "-in", enc, "-recip", path, "-inkey", files.rsa!]);
      expect(out).toBe("zone master key component\n");
    });

    describe("mutual TLS with openssl s_server and s_client", () => {
      let server: { path: string };
      let serverText: string;
      let crlPath: string;
      let good: { path: string };
      let revoked: { path: string; serialHex: string };

      beforeAll(async () => {
        const spki = pemBody(openssl(["pkey", "-in", files.serverKey!, "-pubout"]));
        const serverDer = await issueServerCertificate({
          subject: nameDer([
            ["O", "KeyPortal"],
            ["CN", "localhost"],
          ]),
          spki: new Uint8Array(spki),
          serialHex: newSerialHex(),
          notBefore: now,
          notAfter: new Date(now.getTime() + 30 * DAY),
          dnsNames: ["localhost"],
          ipAddresses: ["127.0.0.1"],
          issuer: mtf.issuer,
        });
        serverText = openssl(["x509", "-noout", "-text"], { input: certificateToPem(serverDer) });
        server = { path: writeFile(tmp.path, "server.pem", certificateToPem(serverDer)) };
        good = await issue(mtf, CertificateKind.MTLS_CLIENT, files.p256!);
        revoked = await issue(mtf, CertificateKind.MTLS_CLIENT, files.rsa!);
        const other = newSerialHex();
        const crl = await mtf.signCrl({
          entries: [
            { serialHex: revoked.serialHex, revokedAt: now, reason: RevocationReason.KEY_COMPROMISE },
            { serialHex: other, revokedAt: now, reason: RevocationReason.SUPERSEDED },
          ],
          thisUpdate: now,
          nextUpdate: new Date(now.getTime() + 7 * DAY),
          crlNumber: 7n,
        });
        crlPath = writeFile(tmp.path, "mtf.crl.pem", crlToPem(crl));
        files.otherRevoked = other;
      });

      async function serve(extra: string[]) {
        const port = await freePort();
        const proc = spawnOpenssl([
          "s_server",
          "-accept",
          `127.0.0.1:${port}`,
          "-cert",
          server.path,
          "-key",
          files.serverKey!,
          "-CAfile",
          files["mtf-chain"]!,
          "-Verify",
          "1",
          "-verify_return_error",
          "-naccept",
          "1",
          ...extra,
        ]);
        children_.push(proc.child);
        // Not a TCP probe: with -naccept 1 the probe would be the one connection served.
        await proc.waitFor("ACCEPT");
        return { port, proc };
      }

      async function connect(port: number, client: { path: string }, key: string) {
        return sClient([
          "-connect",
          `127.0.0.1:${port}`,
          "-servername",
          "localhost",
          "-verify_hostname",
          "localhost",
          "-CAfile",
          files["mtf-chain"]!,
          "-verify_return_error",
          "-cert",
          client.path,
          "-key",
          key,
        ]);
      }

      function waitExit(child: ChildProcess, ms = 5000): Promise<void> {
        return new Promise((resolve) => {
          if (child.exitCode !== null) return resolve();
          const timer = setTimeout(() => {
            child.kill("SIGKILL");
            resolve();
          }, ms);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }

      it("lists both revoked serials with their reasons and a CRL number, and openssl verifies its signature", () => {
        const verify = opensslResult(["crl", "-in", crlPath, "-CAfile", files["mtf-chain"]!, "-noout"]);
        expect(verify.stdout + verify.stderr).toContain("verify OK");
        const text = openssl(["crl", "-in", crlPath, "-noout", "-text"]);
        expect(text).toMatch(/X509v3 CRL Number:\s+7\n/);
        expect(text).toContain("X509v3 Authority Key Identifier");
        expect(text).toContain(`Serial Number: ${revoked.serialHex.toUpperCase()}`);
        expect(text).toContain(`Serial Number: ${files.otherRevoked!.toUpperCase()}`);
        expect(text).toMatch(/Key Compromise/);
        expect(text).toMatch(/Superseded/);
        expect(text).toContain("Version 2 (0x1)");
      });

      it("completes a handshake with an MTLS_CLIENT certificate against s_server -Verify", async () => {
        const { port, proc } = await serve([]);
        const client = await connect(port, good, files.p256!);
        await waitExit(proc.child);
        expect(client.output).toContain("Verify return code: 0 (ok)");
        expect(proc.output()).toMatch(/CN = Acme Client/);
        expect(proc.output()).not.toMatch(/verify error/i);
        // The server side: issueServerCertificate's serverAuth + SANs, which s_client checked (-verify_hostname).
        expect(serverText).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication\n/);
        expect(serverText).toMatch(/DNS:localhost, IP Address:127.0.0.1/);
      });

      it("refuses the revoked client certificate and accepts a valid one when s_server checks the CRL", async () => {
        const refused = await serve(["-crl_check", "-CRL", crlPath, "-CRLform", "PEM"]);
        const refusedClient = await connect(refused.port, revoked, files.rsa!);
        await waitExit(refused.proc.child);
        expect(refused.proc.output() + refusedClient.output).toMatch(/certificate revoked/);

        const accepted = await serve(["-crl_check", "-CRL", crlPath, "-CRLform", "PEM"]);
        const acceptedClient = await connect(accepted.port, good, files.p256!);
        await waitExit(accepted.proc.child);
        expect(acceptedClient.output).toContain("Verify return code: 0 (ok)");
        expect(accepted.proc.output()).not.toMatch(/certificate revoked|verify error/i);
        expect(accepted.proc.output()).toMatch(/CN = Acme Client/);
      });
    });
  });
}
