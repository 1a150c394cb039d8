/**
 * The KMS's own certificates, checked with the real openssl: chains,
 * profiles, CMS signing and decryption through the key store, and a real TLS
 * handshake with the TLS_SERVER certificate.
 */
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Environment } from "../../src/kernel/domain.js";
import { DomainError } from "../../src/kernel/errors.js";
import { FileKeyStore } from "../../src/pki/keystore/index.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { freePort, makeTempDir, openssl, opensslResult, sClient, writeFile } from "../pki/helpers.js";
import { kmsRow, listKms, type KmsCertificateView } from "./helpers.js";

const hasOpenssl = await available("openssl");
const PUBLIC_HOST = "kms.keyportal.test";
const ENVIRONMENTS = ["MTF", "PRODUCTION"] as const;

describe.skipIf(!hasOpenssl)("KMS certificates checked with openssl", () => {
  let server: TestServer;
  let participant: TestOrganization;
  const tmp = makeTempDir("kp-kms-");
  const chains: Record<string, string> = {};
  const current: Record<string, KmsCertificateView> = {};

  beforeAll(async () => {
    server = await startTestServer({ env: { KEYPORTAL_PUBLIC_URL: `https://${PUBLIC_HOST}` } });
    participant = await createOrganization(server, { country: "NL" });
    const token = participant.officers[0]!.token;
    for (const environment of ENVIRONMENTS) {
      const { caChain } = await server.ok<{ caChain: string }>(`query($e: Environment!) { caChain(environment: $e) }`, { e: environment }, token);
      chains[environment] = writeFile(tmp.path, `${environment}-chain.pem`, caChain);
      for (const certificate of await listKms(server, environment, null, token)) {
        if (certificate.current) current[`${environment}/${certificate.purpose}`] = certificate;
      }
    }
  });

  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  const file = (certificate: KmsCertificateView) => writeFile(tmp.path, `${certificate.id}.pem`, certificate.pem);

  it("should have one current, ACTIVE certificate per environment and purpose after the first start", () => {
    expect(Object.keys(current).sort()).toEqual(
      ENVIRONMENTS.flatMap((e) => ["MESSAGE_ENCRYPTION", "MESSAGE_SIGNING", "TLS_SERVER"].map((p) => `${e}/${p}`)).sort(),
    );
    for (const certificate of Object.values(current)) {
      expect(certificate.status).toBe("ACTIVE");
      const x509 = new X509Certificate(certificate.pem);
      const spki = x509.publicKey.export({ type: "spki", format: "der" });
      expect(certificate.keyId).toBe(createHash("sha256").update(spki).digest("hex"));
      expect(certificate.fingerprintSha256).toBe(x509.fingerprint256.replace(/:/g, "").toLowerCase());
      expect(certificate.serialNumber).toBe(x509.serialNumber.toLowerCase());
      expect(certificate.chainPem.startsWith(certificate.pem)).toBe(true);
    }
    expect(current["MTF/MESSAGE_SIGNING"]!.subject).toBe("CN=KeyPortal KMS MTF Message Signing,O=KeyPortal,C=US");
    expect(current["PRODUCTION/TLS_SERVER"]!.subject).toBe("CN=KeyPortal KMS PRODUCTION TLS Server,O=KeyPortal,C=US");
  });

  it("should verify every KMS certificate against its own environment's caChain and not against the other's", () => {
    for (const certificate of Object.values(current)) {
      const other = certificate.environment === "MTF" ? "PRODUCTION" : "MTF";
      expect(openssl(["verify", "-CAfile", chains[certificate.environment]!, file(certificate)])).toContain(": OK");
      const foreign = opensslResult(["verify", "-CAfile", chains[other]!, file(certificate)]);
      expect(foreign.ok).toBe(false);
      expect(foreign.stdout + foreign.stderr).toMatch(/unable to get local issuer certificate/);
    }
  });

  it("should give each purpose its profile: key, key usage, extended key usage and subjectAltName", () => {
    for (const environment of ENVIRONMENTS) {
      const text = (purpose: string) => openssl(["x509", "-in", file(current[`${environment}/${purpose}`]!), "-noout", "-text"]);
      const signing = text("MESSAGE_SIGNING");
      expect(signing).toMatch(/id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
      expect(signing).toMatch(/Key Usage: critical\s+Digital Signature, Non Repudiation\n/);
      // Usable for CMS signatures only (pki/profiles.ts says why): not any-purpose, not TLS.
      expect(signing).toMatch(/Extended Key Usage:\s+E-mail Protection, (1\.3\.6\.1\.5\.5\.7\.3\.36|Document Signing)\n/);
      expect(signing).toMatch(/CA:FALSE/);

      const encryption = text("MESSAGE_ENCRYPTION");
      expect(encryption).toMatch(/rsaEncryption[\s\S]*Public-Key: \(2048 bit\)/);
      expect(encryption).toMatch(/Key Usage: critical\s+Key Encipherment, Data Encipherment\n/);
      expect(encryption).toMatch(/Extended Key Usage:\s+E-mail Protection\n/);

      const tlsServer = text("TLS_SERVER");
      expect(tlsServer).toMatch(/NIST CURVE: P-256/);
      expect(tlsServer).toMatch(/Key Usage: critical\s+Digital Signature\n/);
      expect(tlsServer).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication\n/);
      expect(tlsServer).toMatch(new RegExp(`Subject Alternative Name:\\s+DNS:${PUBLIC_HOST.replace(/\./g, "\\.")}\\n`));

      const purposes: Array<[string, string]> = [
        ["MESSAGE_SIGNING", "smimesign"],
        ["MESSAGE_ENCRYPTION", "smimeencrypt"],
        ["TLS_SERVER", "sslserver"],
      ];
      for (const [purpose, opensslPurpose] of purposes) {
        expect(openssl(["verify", "-purpose", opensslPurpose, "-CAfile", chains[environment]!, file(current[`${environment}/${purpose}`]!)])).toContain(": OK");
      }
    }
  });

  it("should sign a CMS message through the key store that openssl cms -verify accepts against the published certificate", async () => {
    const message = Buffer.from("settlement file 2026-11-28, 42 records\n");
    for (const environment of ENVIRONMENTS) {
      const signed = await server.app.services.kms.signMessage(Environment[environment], message);
      const path = writeFile(tmp.path, `signed-${environment}.p7s`, signed);
      const published = file(current[`${environment}/MESSAGE_SIGNING`]!);
      // -nointern: only the published certificate may serve as the signer's; the chain comes from caChain.
      const out = opensslResult(["cms", "-verify", "-binary", "-inform", "DER", "-in", path, "-CAfile", chains[environment]!, "-nointern", "-certfile", published]);
      expect(out.stderr).toContain("Verification successful");
      expect(out.stdout).toBe(message.toString());
      // The other environment's chain does not vouch for it.
      const other = environment === "MTF" ? "PRODUCTION" : "MTF";
      expect(opensslResult(["cms", "-verify", "-binary", "-inform", "DER", "-in", path, "-CAfile", chains[other]!]).ok).toBe(false);
    }
  });

  it.each([
    ["PKCS#1 v1.5", [] as string[]],
    ["RSA-OAEP with SHA-256", ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"]],
  ])("should decrypt data that openssl cms -encrypt -aes256 encrypted to the published MESSAGE_ENCRYPTION certificate (%s)", async (_name, keyopts) => {
    const plaintext = Buffer.from(`card batch for the KMS ${Math.random()}\n`.repeat(40));
    const input = writeFile(tmp.path, "plain.txt", plaintext);
    for (const environment of ENVIRONMENTS) {
      const recipient = file(current[`${environment}/MESSAGE_ENCRYPTION`]!);
      const out = `${tmp.path}/enc-${environment}.der`;
      openssl(["cms", "-encrypt", "-aes256", "-binary", "-in", input, "-outform", "DER", "-out", out, "-recip", recipient, ...keyopts]);
      const decrypted = await server.app.services.kms.decryptMessage(Environment[environment], new Uint8Array(readFileSync(out)));
      expect(Buffer.from(decrypted).equals(plaintext)).toBe(true);
    }
    // A message for the PRODUCTION key is not for the MTF KMS.
    const production = new Uint8Array(readFileSync(`${tmp.path}/enc-PRODUCTION.der`));
    await expect(server.app.services.kms.decryptMessage(Environment.MTF, production)).rejects.toMatchObject({
      code: "BAD_USER_INPUT",
      reason: "CMS_RECIPIENT_NOT_FOUND",
    } satisfies Partial<DomainError>);
  });

  it("should serve a real TLS handshake with the TLS_SERVER certificate that openssl s_client -verify_return_error accepts", async () => {
    for (const environment of ENVIRONMENTS) {
      const certificate = current[`${environment}/TLS_SERVER`]!;
      const row = await kmsRow(server, certificate.id);
      const keyStore = server.app.services.keyStore;
      expect(keyStore).toBeInstanceOf(FileKeyStore);
      // A test of the certificate, not of the server: the product never hands out key bytes, but
      // this test reads the file key store's key file (its path by label) to give node's TLS server the key.
      const key = readFileSync((keyStore as FileKeyStore).pathOf(row.keyLabel));
      const issuing = certificate.chainPem.slice(certificate.pem.length).split(/(?<=-----END CERTIFICATE-----\n)/)[0]!;
      const tlsServer = tls.createServer({ key, cert: certificate.pem + issuing, minVersion: "TLSv1.2" }, (socket) => {
        // Leave the connection open: s_client quits on its own (Q), and closing first races with it.
        socket.on("error", () => undefined);
        socket.write("hello from the KMS\n");
      });
      const port = await freePort();
      await new Promise<void>((resolve) => tlsServer.listen(port, "127.0.0.1", resolve));
      try {
        const ok = await sClient([
          "-connect",
          `127.0.0.1:${port}`,
          "-servername",
          PUBLIC_HOST,
          "-verify_hostname",
          PUBLIC_HOST,
          "-verify_return_error",
          "-CAfile",
          chains[environment]!,
        ]);
        expect(ok.output).toContain("Verify return code: 0 (ok)");
        expect(ok.status, ok.output).toBe(0);
        // The other environment's chain, or another host name, is refused.
        const other = environment === "MTF" ? "PRODUCTION" : "MTF";
        const foreign = await sClient(["-connect", `127.0.0.1:${port}`, "-servername", PUBLIC_HOST, "-verify_return_error", "-CAfile", chains[other]!]);
        expect(foreign.status).not.toBe(0);
        const wrongHost = await sClient([
          "-connect",
          `127.0.0.1:${port}`,
          "-servername",
          "other.keyportal.test",
          "-verify_hostname",
          "other.keyportal.test",
          "-verify_return_error",
          "-CAfile",
          chains[environment]!,
        ]);
        expect(wrongHost.status).not.toBe(0);
      } finally {
        await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
      }
    }
  });

  it("should serve the current certificates at GET /kms/<ENV>/<purpose>.pem without a token", async () => {
    const signing = current["MTF/MESSAGE_SIGNING"]!;
    for (const path of ["/kms/MTF/message_signing.pem", "/kms/MTF/MESSAGE_SIGNING.pem", "/kms/mtf/message_signing.pem"]) {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("application/x-pem-file");
      expect(res.headers.get("x-kms-key-id")).toBe(signing.keyId);
      expect(await res.text()).toBe(signing.pem);
    }
    const chain = await fetch(`${server.url}/kms/PRODUCTION/tls_server.chain.pem`);
    expect(await chain.text()).toBe(current["PRODUCTION/TLS_SERVER"]!.chainPem);
    for (const path of ["/kms/MTF/message_signer.pem", "/kms/QA/tls_server.pem", "/kms/MTF/Message_Signing.pem", "/kms/MTF/tls_server.der"]) {
      expect((await fetch(`${server.url}${path}`)).status).toBe(404);
    }
  });
});

describe.skipIf(!hasOpenssl)("KMS certificates when the CAs are RSA (KEYPORTAL_CA_KEY_ALGORITHM=RSA-3072)", () => {
  let server: TestServer;
  const tmp = makeTempDir("kp-kms-rsa-");

  beforeAll(async () => {
    server = await startTestServer({ env: { KEYPORTAL_CA_KEY_ALGORITHM: "RSA-3072" } });
  });

  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it("should use RSA-3072 keys for every purpose, keyEncipherment on the TLS certificate, and sign CMS with RSA", async () => {
    const { caChain } = await server.ok<{ caChain: string }>(`{ caChain(environment: PRODUCTION) }`);
    const chain = writeFile(tmp.path, "chain.pem", caChain);
    const certificates = await listKms(server, "PRODUCTION", null, server.operatorToken);
    for (const certificate of certificates) {
      const text = openssl(["x509", "-in", writeFile(tmp.path, `${certificate.purpose}.pem`, certificate.pem), "-noout", "-text"]);
      expect(text).toMatch(/rsaEncryption[\s\S]*Public-Key: \(3072 bit\)/);
      if (certificate.purpose === "TLS_SERVER") {
        expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
        // The default public URL's host is an address: an IP subjectAltName.
        expect(text).toMatch(/Subject Alternative Name:\s+IP Address:127\.0\.0\.1\n/);
      }
    }
    const signed = writeFile(tmp.path, "signed.p7s", await server.app.services.kms.signMessage(Environment.PRODUCTION, Buffer.from("rsa")));
    const out = opensslResult(["cms", "-verify", "-binary", "-inform", "DER", "-in", signed, "-CAfile", chain]);
    expect(out.stderr).toContain("Verification successful");
    expect(openssl(["cms", "-cmsout", "-print", "-inform", "DER", "-in", signed])).toContain("sha256WithRSAEncryption");
  });
});
