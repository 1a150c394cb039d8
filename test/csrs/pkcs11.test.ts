/** The whole issuance path with the CA keys in SoftHSM2 (PKCS#11), as configured by KEYPORTAL_PKCS11_*. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import { generateKey, makeCsr, makeTempDir, openssl, writeFile } from "../pki/helpers.js";
import { initToken } from "../pki/softhsm.js";
import { available } from "../support/deps.js";
import { approveAsSecondOperator } from "../support/dual-control.js";
import { createOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

const ready = await available("openssl", "softhsm2");

describe.skipIf(!ready)("issuance with the CA keys in SoftHSM2", () => {
  let server: TestServer;
  const tmp = makeTempDir("kp-p11-app-");
  let p11Env: Record<string, string>;

  beforeAll(async () => {
    const token = initToken(tmp.path);
    p11Env = { KEYPORTAL_PKCS11_LIBRARY: token.library, KEYPORTAL_PKCS11_TOKEN: token.tokenLabel, KEYPORTAL_PKCS11_PIN: token.pin };
    server = await startTestServer({ env: p11Env });
  });
  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it("should keep no CA key file on disk and issue a certificate that openssl verifies", async () => {
    expect(readdirSync(server.dataDir)).not.toContain("keys");
    const org = await createOrganization(server, { country: "AT" });
    const key = generateKey(tmp.path, "p256");
    const pem = makeCsr(key, `/C=AT/O=${org.name}/CN=HSM Issued`);
    const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
      `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
      { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "PRODUCTION", pem } },
      org.officers[0]!.token,
    );
    await approveAsSecondOperator(server, submitCsr.id);
    const { signCsr } = await server.ok<{ signCsr: { pem: string } }>(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { pem } }`, { id: submitCsr.id });
    const { caChain } = await server.ok<{ caChain: string }>(`{ caChain(environment: PRODUCTION) }`);
    const chain = writeFile(tmp.path, "chain.pem", caChain);
    const leaf = writeFile(tmp.path, "leaf.pem", signCsr.pem);
    expect(openssl(["verify", "-CAfile", chain, leaf])).toContain(": OK");
  });

  it("should load the same CA from the token after a restart", async () => {
    const { caChain: before } = await server.ok<{ caChain: string }>(`{ caChain(environment: MTF) }`);
    const { dataDir, operatorToken } = server;
    await server.close({ keepData: true });
    server = await startTestServer({ dataDir, operatorToken, env: p11Env });
    const { caChain: after } = await server.ok<{ caChain: string }>(`{ caChain(environment: MTF) }`);
    expect(after).toBe(before);
    expect(readdirSync(dataDir)).not.toContain("keys");
  });
});
