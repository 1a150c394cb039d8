import { statSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/commands.js";
import { makeTempDir, openssl } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, env, (l) => out.push(l), (l) => err.push(l));
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe.skipIf(!hasOpenssl)("the keyportal CLI", () => {
  let server: TestServer;
  let org: TestOrganization;
  const tmp = makeTempDir("kp-cli-");
  let env: Record<string, string>;

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { country: "NL" });
    env = { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: org.officers[0]!.token };
  });
  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it("should make a key (mode 0600) and a CSR locally, submit it, and download the signed certificate", async () => {
    const key = path.join(tmp.path, "client.key");
    const csr = path.join(tmp.path, "client.csr");
    const made = await cli(["csr", "--kind", "MTLS_CLIENT", "--cn", "CLI Client", "--organization-id", org.id, "--key", key, "--out", csr], env);
    expect(made.code, made.err).toBe(0);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(openssl(["req", "-in", csr, "-noout", "-verify"], {})).toBeDefined();
    expect(openssl(["req", "-in", csr, "-noout", "-subject"])).toContain(`O = ${org.name}`);

    const submitted = await cli(["submit", "--csr", csr, "--kind", "mtls_client", "--environment", "MTF", "--organization-id", org.id], env);
    expect(submitted.code, submitted.err).toBe(0);
    const csrId = /submitted ([0-9a-f-]{36})/.exec(submitted.out)![1]!;
    const { signCsr } = await server.ok<{ signCsr: { id: string; serialNumber: string } }>(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { id serialNumber } }`, { id: csrId });

    const status = await cli(["status", "--csr", csrId], env);
    expect(status.out).toContain("SIGNED");
    expect(status.out).toContain(signCsr.id);

    for (const format of ["pem", "der", "p7b", "chain"]) {
      const target = path.join(tmp.path, `cert.${format}`);
      const downloaded = await cli(["download", "--certificate", signCsr.id, "--format", format, "--out", target], env);
      expect(downloaded.code, downloaded.err).toBe(0);
    }
    const serial = openssl(["x509", "-in", path.join(tmp.path, "cert.pem"), "-noout", "-serial"]).toLowerCase();
    expect(serial).toContain(signCsr.serialNumber);
    // The certificate's key is the CLI-made key: the private key never left this directory.
    const certKey = openssl(["x509", "-in", path.join(tmp.path, "cert.pem"), "-noout", "-pubkey"]);
    const localKey = openssl(["pkey", "-in", key, "-pubout"]);
    expect(certKey.trim()).toBe(localKey.trim());
  });

  it("should refuse to overwrite an existing key file", async () => {
    const key = path.join(tmp.path, "again.key");
    const args = ["csr", "--kind", "SIGNING", "--cn", "Twice", "--org", org.name, "--country", "NL", "--key", key, "--out", path.join(tmp.path, "a.csr")];
    expect((await cli(args, env)).code).toBe(0);
    const second = await cli([...args.slice(0, -1), path.join(tmp.path, "b.csr")], env);
    expect(second.code).toBe(1);
    expect(second.err).toContain("refusing to overwrite");
  });

  it("should say clearly when the URL is wrong, the token is refused or a file is missing", async () => {
    const wrongUrl = await cli(["status", "--csr", "x"], { KEYPORTAL_URL: "http://127.0.0.1:9", KEYPORTAL_TOKEN: "t" });
    expect(wrongUrl.err).toMatch(/cannot reach KeyPortal at http:\/\/127\.0\.0\.1:9/);
    const badToken = await cli(["status", "--csr", "x"], { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: "kp_not_a_token" });
    expect(badToken.code).toBe(2);
    expect(badToken.err).toContain("refused the token");
    const missing = await cli(["submit", "--csr", path.join(tmp.path, "nope.csr"), "--kind", "SIGNING", "--environment", "MTF", "--organization-id", org.id], env);
    expect(missing.err).toContain("does not exist");
  });

  it("should make RSA keys for ENCRYPTION by default and print usage for an unknown command", async () => {
    const key = path.join(tmp.path, "enc.key");
    const made = await cli(["csr", "--kind", "ENCRYPTION", "--cn", "Enc", "--org", org.name, "--country", "NL", "--key", key, "--out", path.join(tmp.path, "enc.csr")], env);
    expect(made.code).toBe(0);
    expect(openssl(["pkey", "-in", key, "-noout", "-text"])).toContain("2048 bit");
    const unknown = await cli(["frobnicate"], env);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain("usage: keyportal");
  });
});
