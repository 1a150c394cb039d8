/**
 * The KMS's own keys on a PKCS#11 token (SoftHSM2): created on first start
 * next to the CA keys, certified, used to sign and decrypt without leaving
 * the token, and rotated.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Environment } from "../../src/kernel/domain.js";
import { Pkcs11KeyStore } from "../../src/pki/keystore/index.js";
import { available } from "../support/deps.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { makeTempDir, openssl, opensslResult, writeFile } from "../pki/helpers.js";
import { initToken } from "../pki/softhsm.js";
import { listKms, ROTATE_KMS, type KmsCertificateView } from "./helpers.js";

describe.skipIf(!(await available("openssl", "softhsm2")))("KMS keys on SoftHSM2", () => {
  const tmp = makeTempDir("kp-kms-p11-");
  let server: TestServer;
  let chain: string;
  let current: KmsCertificateView[];

  beforeAll(async () => {
    const token = initToken(tmp.path);
    server = await startTestServer({
      env: { KEYPORTAL_PKCS11_LIBRARY: token.library, KEYPORTAL_PKCS11_TOKEN: token.tokenLabel, KEYPORTAL_PKCS11_PIN: token.pin },
    });
    const { caChain } = await server.ok<{ caChain: string }>(`{ caChain(environment: MTF) }`);
    chain = writeFile(tmp.path, "mtf-chain.pem", caChain);
    current = await listKms(server, "MTF", null, server.operatorToken);
  });

  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it("should create and certify the KMS keys on the token", () => {
    expect(server.app.services.keyStore).toBeInstanceOf(Pkcs11KeyStore);
    expect(current.map((c) => c.purpose).sort()).toEqual(["MESSAGE_ENCRYPTION", "MESSAGE_SIGNING", "TLS_SERVER"]);
    for (const certificate of current) {
      expect(openssl(["verify", "-CAfile", chain, writeFile(tmp.path, `${certificate.id}.pem`, certificate.pem)])).toContain(": OK");
    }
  });

  it("should sign CMS on the token that openssl cms -verify accepts, before and after a rotation", async () => {
    const message = Buffer.from("signed on the token\n");
    for (const round of [1, 2]) {
      if (round === 2) await server.ok(ROTATE_KMS, { environment: "MTF", purpose: "MESSAGE_SIGNING" });
      const [signingCertificate] = await listKms(server, "MTF", "MESSAGE_SIGNING", server.operatorToken);
      const path = writeFile(tmp.path, `signed-${round}.p7s`, await server.app.services.kms.signMessage(Environment.MTF, message));
      const published = writeFile(tmp.path, `signing-${round}.pem`, signingCertificate!.pem);
      const out = opensslResult(["cms", "-verify", "-binary", "-inform", "DER", "-in", path, "-CAfile", chain, "-nointern", "-certfile", published]);
      expect(out.stderr).toContain("Verification successful");
      expect(out.stdout).toBe(message.toString());
    }
  });

  it("should decrypt on the token what openssl cms -encrypt sent to the published encryption certificate", async () => {
    const encryption = current.find((c) => c.purpose === "MESSAGE_ENCRYPTION")!;
    const recipient = writeFile(tmp.path, "enc.pem", encryption.pem);
    const plaintext = Buffer.from("for the HSM-held key\n".repeat(10));
    const input = writeFile(tmp.path, "plain.txt", plaintext);
    for (const keyopts of [[], ["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"]]) {
      const out = `${tmp.path}/enc-${keyopts.length}.der`;
      openssl(["cms", "-encrypt", "-aes256", "-binary", "-in", input, "-outform", "DER", "-out", out, "-recip", recipient, ...keyopts]);
      const decrypted = await server.app.services.kms.decryptMessage(Environment.MTF, new Uint8Array(readFileSync(out)));
      expect(Buffer.from(decrypted).equals(plaintext)).toBe(true);
    }
  });
});
