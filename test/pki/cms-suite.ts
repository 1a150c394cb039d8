/**
 * signCms / decryptCms interop with openssl cms, for the KMS's own
 * certificates, run once per key store.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { Environment } from "../../src/kernel/domain.js";
import { systemClock } from "../../src/kernel/clock.js";
import { DomainError } from "../../src/kernel/errors.js";
import { FileCaMaterialStore, loadOrCreateAuthority, type CertificateAuthority } from "../../src/pki/ca.js";
import { issueCertificate, nameDer, newSerialHex } from "../../src/pki/issue.js";
import { signCms, decryptCms } from "../../src/pki/cms.js";
import { certificateToPem } from "../../src/pki/bundle.js";
import type { KeyAlgorithmName, KeyStore } from "../../src/pki/keystore/index.js";
import { generateKey, makeTempDir, openssl, opensslResult, writeFile } from "./helpers.js";

const DAY = 86_400_000;

export function defineCmsSuite(label: string, makeKeyStore: (dir: string) => Promise<KeyStore>): void {
  describe(`CMS with ${label}`, () => {
    const tmp = makeTempDir("kp-cms-");
    let keyStore: KeyStore;
    let ca: CertificateAuthority;
    let chainPath: string;
    const now = new Date(systemClock.now().getTime() - 60_000);

    beforeAll(async () => {
      keyStore = await makeKeyStore(tmp.path);
      ca = await loadOrCreateAuthority({
        environment: Environment.MTF,
        keyStore,
        material: new FileCaMaterialStore(`${tmp.path}/material`),
        now,
        keyAlgorithm: "EC-P256",
        organizationName: "KeyPortal",
        crlBaseUrl: "http://127.0.0.1:4000/crl",
      });
      chainPath = writeFile(tmp.path, "chain.pem", ca.chainPem);
    });

    afterAll(async () => {
      await keyStore?.close();
      tmp.cleanup();
    });

    async function kmsCertificate(name: string, algorithm: KeyAlgorithmName, purpose: "sign" | "decrypt") {
      const keys = await keyStore.getOrCreateKeyPair(name, algorithm, purpose);
      const spki = new Uint8Array(await keyStore.crypto.subtle.exportKey("spki", keys.publicKey));
      const der = await issueCertificate({
        subject: nameDer([
          ["C", "US"],
          ["O", "KeyPortal"],
          ["CN", `KeyPortal MTF ${name}`],
        ]),
        spki,
        serialHex: newSerialHex(),
        notBefore: now,
        notAfter: new Date(now.getTime() + 90 * DAY),
        keyUsage: purpose === "sign" ? ["digitalSignature", "nonRepudiation"] : ["keyEncipherment", "dataEncipherment"],
        extendedKeyUsage: purpose === "sign" ? ["emailProtection", "documentSigning"] : ["emailProtection"],
        issuer: ca.issuer,
      });
      return { keys, der, path: writeFile(tmp.path, `${name}.pem`, certificateToPem(der)) };
    }

    it.each(["EC-P256", "EC-P384", "RSA-2048"] as const)("signs attached CMS with a %s key that openssl cms -verify accepts", async (algorithm) => {
      const signer = await kmsCertificate(`kms-signing-${algorithm.toLowerCase()}`, algorithm, "sign");
      const message = Buffer.from("batch 2026-01-31: 12 files\n");
      const signed = await signCms(message, signer.der, signer.keys, keyStore, {
        signingTime: now,
        certificates: [new Uint8Array(ca.issuing.rawData)],
      });
      const path = writeFile(tmp.path, `signed-${algorithm}.p7s`, signed);
      const out = opensslResult(["cms", "-verify", "-binary", "-inform", "DER", "-in", path, "-CAfile", chainPath]);
      expect(out.stderr).toContain("Verification successful");
      expect(out.stdout).toBe(message.toString());
      const printed = openssl(["cms", "-cmsout", "-print", "-inform", "DER", "-in", path]);
      expect(printed).toContain("signingTime");
      expect(printed).toContain("sha256");

      // One changed byte of content and the signature no longer verifies.
      const tampered = Buffer.from(signed);
      tampered[tampered.indexOf(Buffer.from("12 files"))] ^= 0x01;
      const bad = opensslResult(["cms", "-verify", "-binary", "-inform", "DER", "-in", writeFile(tmp.path, "tampered.p7s", tampered), "-CAfile", chainPath]);
      expect(bad.ok).toBe(false);
      expect(bad.stderr).toMatch(/Verification failure|digest failure/);
    });

    describe("decryptCms", () => {
      let recipient: Awaited<ReturnType<typeof kmsCertificate>>;
      const secret = "key component 1 of 3: 0123456789abcdef\n";
      let plain: string;

      beforeAll(async () => {
        recipient = await kmsCertificate("kms-encryption", "RSA-2048", "decrypt");
        plain = writeFile(tmp.path, "plain.txt", secret);
      });

      it.each([
        ["RSA PKCS#1 v1.5 key transport (openssl's default)", []],
        ["RSA-OAEP with SHA-1", ["-keyopt", "rsa_padding_mode:oaep"]],
        ["RSA-OAEP with SHA-256", ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"]],
        ["a subjectKeyIdentifier recipient", ["-keyid"]],
      ])("decrypts openssl cms -encrypt -aes256 output using %s", async (_what, extra) => {
        const out = `${tmp.path}/enc-${Math.random().toString(36).slice(2)}.p7m`;
        openssl(["cms", "-encrypt", "-aes256", "-binary", "-in", plain, "-outform", "DER", "-out", out, "-recip", recipient.path, ...extra]);
        const decrypted = await decryptCms(readDer(out), recipient.der, recipient.keys, keyStore.crypto);
        expect(Buffer.from(decrypted).toString()).toBe(secret);
      });

      it("refuses a message encrypted to another certificate", async () => {
        const otherKey = generateKey(tmp.path, "rsa2048");
        const otherCert = openssl(["req", "-x509", "-new", "-key", otherKey, "-subj", "/CN=other", "-days", "1"]);
        const otherPath = writeFile(tmp.path, "other.pem", otherCert);
        const out = `${tmp.path}/other.p7m`;
        openssl(["cms", "-encrypt", "-aes256", "-binary", "-in", plain, "-outform", "DER", "-out", out, otherPath]);
        const err = await decryptCms(readDer(out), recipient.der, recipient.keys, keyStore.crypto).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(DomainError);
        expect((err as DomainError).reason).toBe("CMS_RECIPIENT_NOT_FOUND");
      });

      it("never returns the plaintext for a message whose encrypted key was altered", async () => {
        const out = `${tmp.path}/altered.p7m`;
        openssl(["cms", "-encrypt", "-aes256", "-binary", "-in", plain, "-outform", "DER", "-out", out, recipient.path]);
        const der = Buffer.from(readDer(out));
        // The encrypted key is the 256-byte OCTET STRING (04 82 01 00); flip a byte in its middle.
        const at = der.indexOf(Buffer.from([0x04, 0x82, 0x01, 0x00])) + 4 + 128;
        der[at]! ^= 0x40;
        const result = await decryptCms(new Uint8Array(der), recipient.der, recipient.keys, keyStore.crypto).then(
          (bytes) => Buffer.from(bytes).toString("latin1"),
          (e: unknown) => e,
        );
        // Implicit rejection: a random content key, so either the AES padding check fails or garbage comes out.
        if (result instanceof DomainError) expect(result.reason).toBe("CMS_DECRYPTION_FAILED");
        else expect(result).not.toBe(secret);
      });

      it("refuses input that is not CMS", async () => {
        const err = await decryptCms(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]), recipient.der, recipient.keys, keyStore.crypto).catch((e: unknown) => e);
        expect((err as DomainError).reason).toBe("INVALID_CMS");
      });
    });
  });
}

function readDer(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}
