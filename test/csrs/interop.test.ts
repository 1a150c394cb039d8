/**
 * End to end with the real openssl binary: CSRs made by openssl go through
 * the API, and what comes back works where certificates are used.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChildProcess } from "node:child_process";
import { Environment } from "../../src/kernel/domain.js";
import { freePort, generateKey, makeCsr, makeTempDir, openssl, opensslResult, sClient, spawnOpenssl, type TestKey, writeFile } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { approveAsSecondOperator } from "../support/dual-control.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { serverCertificate } from "../support/openssl-server.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");

interface Issued {
  id: string;
  pem: string;
  chainPem: string;
  key: string;
  certFile: string;
}

describe.skipIf(!hasOpenssl)("certificates issued through the API, checked with openssl", () => {
  let server: TestServer;
  let org: TestOrganization;
  const tmp = makeTempDir("kp-interop-");
  const children: ChildProcess[] = [];
  const chains: Partial<Record<Environment, string>> = {};

  async function issue(kind: string, environment: Environment, keyKind: TestKey, cn: string): Promise<Issued> {
    const key = generateKey(tmp.path, keyKind);
    const pem = makeCsr(key, `/C=${org.country}/O=${org.name}/CN=${cn}`);
    const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
      `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
      { input: { organizationId: org.id, kind, environment, pem } },
      org.officers[0]!.token,
    );
    if (environment === Environment.PRODUCTION) await approveAsSecondOperator(server, submitCsr.id);
    const { signCsr } = await server.ok<{ signCsr: { id: string; pem: string; chainPem: string } }>(
      `mutation($id: ID!) { signCsr(input: { csrId: $id }) { id pem chainPem } }`,
      { id: submitCsr.id },
    );
    return { ...signCsr, key, certFile: writeFile(tmp.path, `${signCsr.id}.pem`, signCsr.pem) };
  }

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { country: "BE" });
    for (const env of [Environment.MTF, Environment.PRODUCTION]) {
      const { caChain } = await server.ok<{ caChain: string }>(`query($e: Environment!) { caChain(environment: $e) }`, { e: env }, org.officers[0]!.token);
      chains[env] = writeFile(tmp.path, `${env}-chain.pem`, caChain);
    }
  });
  afterAll(async () => {
    for (const child of children) child.kill("SIGKILL");
    await server?.close();
    tmp.cleanup();
  });

  it.each([
    ["MTLS_CLIENT", "p256", ["Digital Signature"], ["TLS Web Client Authentication"]],
    ["MTLS_CLIENT", "rsa2048", ["Digital Signature"], ["TLS Web Client Authentication"]],
    ["SIGNING", "p384", ["Digital Signature", "Non Repudiation"], ["E-mail Protection", "(1\\.3\\.6\\.1\\.5\\.5\\.7\\.3\\.36|Document Signing)"]],
    ["ENCRYPTION", "rsa3072", ["Key Encipherment", "Data Encipherment"], ["E-mail Protection"]],
  ] as const)("should issue a %s certificate for an openssl %s key that verifies and carries only the profile's extensions", async (kind, keyKind, keyUsage, eku) => {
    const cert = await issue(kind, Environment.MTF, keyKind, `${kind} ${keyKind}`);
    expect(openssl(["verify", "-CAfile", chains.MTF!, cert.certFile])).toContain(": OK");
    const text = openssl(["x509", "-in", cert.certFile, "-noout", "-text"]);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(new RegExp(`X509v3 Key Usage: critical\\s+${keyUsage.join(", ")}\\s`));
    expect(text).toMatch(new RegExp(`X509v3 Extended Key Usage:\\s+${eku.join(", ")}\\n`));
    expect(text).toContain("X509v3 Subject Key Identifier");
    expect(text).toContain("X509v3 Authority Key Identifier");
    expect(text).toMatch(/X509v3 CRL Distribution Points:[\s\S]*URI:http:\/\/127\.0\.0\.1:4000\/crl\/mtf\.crl/i);
    expect(text).not.toContain("Subject Alternative Name");
  });

  it("should complete a mutual-TLS handshake with an MTLS_CLIENT certificate against openssl s_server -Verify", async () => {
    const client = await issue("MTLS_CLIENT", Environment.MTF, "p256", "mTLS handshake");
    const tls = await serverCertificate(tmp.path, server.app.services.authorities.of(Environment.MTF), server.clock.now());
    const port = await freePort();
    const proc = spawnOpenssl(["s_server", "-accept", `127.0.0.1:${port}`, "-cert", tls.cert, "-key", tls.key, "-CAfile", chains.MTF!, "-Verify", "1", "-verify_return_error", "-naccept", "1"]);
    children.push(proc.child);
    await proc.waitFor("ACCEPT");
    // Both sides have their real clocks; the test clock is set near today's date.
    const result = await sClient(["-connect", `127.0.0.1:${port}`, "-cert", client.certFile, "-key", client.key, "-CAfile", chains.MTF!, "-verify_return_error"]);
    expect(result.output).toContain("Verify return code: 0 (ok)");
    // -naccept 1: the server exits once it has served this client, with everything it printed about it.
    await new Promise<void>((resolve) => {
      if (proc.child.exitCode !== null) return resolve();
      const timer = setTimeout(resolve, 5000);
      proc.child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
    });
    expect(proc.output()).toMatch(/subject=.*CN\s*=\s*mTLS handshake/);
  });

  it("should sign CMS with a SIGNING certificate's key that openssl cms -verify accepts", async () => {
    const signer = await issue("SIGNING", Environment.PRODUCTION, "p256", "Message Signer");
    const data = writeFile(tmp.path, "message.txt", "settlement file 2026-11-28\n");
    const signed = `${tmp.path}/message.p7m`;
    openssl(["cms", "-sign", "-in", data, "-signer", signer.certFile, "-inkey", signer.key, "-outform", "DER", "-out", signed, "-nodetach", "-md", "sha256"]);
    const verified = opensslResult(["cms", "-verify", "-inform", "DER", "-in", signed, "-CAfile", chains.PRODUCTION!, "-purpose", "any"]);
    expect(verified.stderr).toContain("Verification successful");
    expect(verified.stdout).toContain("settlement file 2026-11-28");
  });

  it("should let openssl encrypt CMS to an ENCRYPTION certificate that its key decrypts", async () => {
    const recipient = await issue("ENCRYPTION", Environment.PRODUCTION, "rsa2048", "Message Recipient");
    const data = writeFile(tmp.path, "secret.txt", "key block 0123456789\n");
    const enveloped = `${tmp.path}/secret.p7m`;
    openssl(["cms", "-encrypt", "-binary", "-in", data, "-aes256", "-outform", "DER", "-out", enveloped, recipient.certFile]);
    expect(openssl(["cms", "-decrypt", "-inform", "DER", "-in", enveloped, "-recip", recipient.certFile, "-inkey", recipient.key])).toBe("key block 0123456789\n");
  });

  it("should not verify an MTF certificate against the PRODUCTION chain", async () => {
    const cert = await issue("SIGNING", Environment.MTF, "p256", "Test Facility Only");
    const result = opensslResult(["verify", "-CAfile", chains.PRODUCTION!, cert.certFile]);
    expect(result.ok).toBe(false);
    expect(result.stdout + result.stderr).toContain("unable to get local issuer certificate");
  });

  it.each([
    ["a SHA-1 signed request", "p256", "-sha1", "WEAK_SIGNATURE_ALGORITHM", "SIGNING"],
    ["an RSA-1024 key", "rsa1024", "-sha256", "WEAK_KEY", "SIGNING"],
    ["an Ed25519 key", "ed25519", null, "UNSUPPORTED_KEY_ALGORITHM", "SIGNING"],
    ["an EC key for ENCRYPTION", "p256", "-sha256", "UNSUPPORTED_KEY_ALGORITHM", "ENCRYPTION"],
  ] as const)("should refuse %s through submitCsr with its reason", async (_label, keyKind, digest, reason, kind) => {
    const key = generateKey(tmp.path, keyKind);
    const pem = makeCsr(key, `/C=${org.country}/O=${org.name}/CN=Refused`, digest);
    const result = await server.gql(
      `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
      { input: { organizationId: org.id, kind, environment: "MTF", pem } },
      org.officers[0]!.token,
    );
    expect(result.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason });
  });

  it("should refuse a subject whose O is not the organization's registered name", async () => {
    const key = generateKey(tmp.path, "p256");
    const pem = makeCsr(key, `/C=${org.country}/O=Somebody Else/CN=Impostor`);
    const result = await server.gql(
      `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
      { input: { organizationId: org.id, kind: "SIGNING", environment: "MTF", pem } },
      org.officers[0]!.token,
    );
    expect(result.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "SUBJECT_MISMATCH" });
  });
});
