import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT, main } from "../../src/cli/commands.js";
import { COMMANDS } from "../../src/cli/registry.js";
import { makeTempDir, openssl } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { secondOperator } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");

export async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { HOME: "/nonexistent", ...env }, (l) => out.push(l), (l) => err.push(l));
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("the keyportal CLI without a server", () => {
  it("should print --help with an example for every command, and list every command in help", async () => {
    const help = await cli(["help"]);
    expect(help.code).toBe(0);
    for (const command of COMMANDS) {
      expect(help.out).toContain(command.name);
      const own = await cli([...command.name.split(" "), "--help"]);
      expect(own.code, command.name).toBe(0);
      expect(own.out).toContain(`usage: keyportal ${command.name}`);
      expect(own.out).toMatch(/examples?:\n {2}keyportal /);
      expect(own.out).toContain("exit codes");
      expect(await cli(["help", ...command.name.split(" ")])).toEqual(own);
    }
    expect(help.out).toMatch(/exit codes:\n {2}0 {3}done/);
  });

  it("should print its version, as text and as JSON", async () => {
    const pkg = JSON.parse(readFileSync(path.resolve(import.meta.dirname, "../../package.json"), "utf8")) as { version: string };
    expect((await cli(["--version"])).out).toBe(`keyportal ${pkg.version}`);
    expect(JSON.parse((await cli(["--version", "--json"])).out)).toEqual({ version: pkg.version });
  });

  it("should answer a wrong command line with exit 64 and a line saying what to do, never a raw GraphQL error", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["frobnicate"], /unknown command "frobnicate"; keyportal help/],
      [["csr", "--bogus"], /Unknown option '--bogus'.*csr --help/],
      [["watch", "--types", "FOO"], /--types must be one of OFFICER_REGISTERED, .*\(got "FOO"\)/],
      [["watch", "--after", "abc"], /--after must be a notification cursor/],
      [["download", "--certificate", "x"], /--certificate must be an id/],
      [["revoke", "--certificate", "2f1c0b9e-5d0a-4a47-9a59-3c9e1f7d1a20", "--reason", "KEY_COMPROMISE"], /keyportal compromise/],
      [["sign", "--csr", "2f1c0b9e-5d0a-4a47-9a59-3c9e1f7d1a20", "--validity-days", "0"], /--validity-days must be a whole number/],
      [["delegations"], /"delegations" needs one of: list, approve, decline, revoke/],
      [["submit", "--kind", "SIGNING"], /--csr is required/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args, { KEYPORTAL_URL: "http://127.0.0.1:9", KEYPORTAL_TOKEN: "t" });
      expect(result.code, args.join(" ")).toBe(EXIT.USAGE);
      expect(result.err, args.join(" ")).toMatch(message);
      expect(result.err).not.toMatch(/Variable "\$|GraphQL|Expected type/);
    }
  });

  it("should refuse a token file that others may read, and use a 0600 one", async () => {
    const tmp = makeTempDir("kp-cli-token-");
    try {
      const file = path.join(tmp.path, "token");
      writeFileSync(file, "kp_from_file\n", { mode: 0o644 });
      chmodSync(file, 0o644);
      const open = await cli(["whoami", "--token-file", file], { KEYPORTAL_URL: "http://127.0.0.1:9" });
      expect(open.code).toBe(EXIT.USAGE);
      expect(open.err).toContain(`run: chmod 600 ${file}`);
      chmodSync(file, 0o600);
      // Now the token is read and sent; the (unreachable) server is what fails.
      const closed = await cli(["whoami"], { KEYPORTAL_URL: "http://127.0.0.1:9", KEYPORTAL_TOKEN_FILE: file });
      expect(closed.code).toBe(EXIT.UNREACHABLE);
      expect(closed.err).toMatch(/cannot reach KeyPortal at http:\/\/127\.0\.0\.1:9/);
      // --token-file wins over KEYPORTAL_TOKEN: a world-readable file named on the command line is refused even then.
      chmodSync(file, 0o640);
      const flagWins = await cli(["whoami", "--token-file", file], { KEYPORTAL_URL: "http://127.0.0.1:9", KEYPORTAL_TOKEN: "kp_env" });
      expect(flagWins.err).toContain("may be read by others");
      chmodSync(file, 0o600);
      const json = await cli(["whoami", "--json"], { KEYPORTAL_URL: "http://127.0.0.1:9", KEYPORTAL_TOKEN_FILE: file });
      expect(JSON.parse(json.err)).toMatchObject({ error: { exitCode: EXIT.UNREACHABLE } });
    } finally {
      tmp.cleanup();
    }
  });
});

describe.skipIf(!hasOpenssl)("the keyportal CLI against a server", () => {
  let server: TestServer;
  let org: TestOrganization;
  const tmp = makeTempDir("kp-cli-");
  let env: Record<string, string>;
  let operator: Record<string, string>;

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { country: "NL" });
    env = { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: org.officers[0]!.token };
    operator = { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: server.operatorToken };
  });
  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  const file = (name: string) => path.join(tmp.path, name);

  /** csr + submit as the officer; the CSR id. */
  async function submitted(cn: string, kind = "MTLS_CLIENT"): Promise<string> {
    const made = await cli(["csr", "--kind", kind, "--cn", cn, "--organization-id", org.id, "--key", file(`${cn}.key`), "--out", file(`${cn}.csr`)], env);
    expect(made.code, made.err).toBe(0);
    const sub = await cli(["submit", "--csr", file(`${cn}.csr`), "--kind", kind, "--environment", "MTF", "--organization-id", org.id, "--json"], env);
    expect(sub.code, sub.err).toBe(0);
    return (JSON.parse(sub.out) as { id: string }).id;
  }

  async function signed(cn: string): Promise<{ id: string; serialNumber: string }> {
    const csrId = await submitted(cn);
    const sign = await cli(["sign", "--csr", csrId, "--json"], operator);
    expect(sign.code, sign.err).toBe(0);
    return JSON.parse(sign.out) as { id: string; serialNumber: string };
  }

  it("should make a key (mode 0600) and a CSR locally, submit it, have the operator sign it, and download every format", async () => {
    const key = file("client.key");
    const csr = file("client.csr");
    const made = await cli(["csr", "--kind", "MTLS_CLIENT", "--cn", "CLI Client", "--organization-id", org.id, "--key", key, "--out", csr], env);
    expect(made.code, made.err).toBe(0);
    expect(made.out).toContain(`next:        keyportal submit --csr ${csr} --kind MTLS_CLIENT --environment MTF --organization-id ${org.id}`);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(openssl(["req", "-in", csr, "-noout", "-subject"])).toContain(`O = ${org.name}`);

    const sub = await cli(["submit", "--csr", csr, "--kind", "mtls_client", "--environment", "MTF", "--organization-id", org.id], env);
    expect(sub.code, sub.err).toBe(0);
    const csrId = /submitted ([0-9a-f-]{36})/.exec(sub.out)![1]!;
    expect(sub.out).toContain(`next: keyportal status --csr ${csrId}`);

    const sign = await cli(["sign", "--csr", csrId], operator);
    expect(sign.code, sign.err).toBe(0);
    const certId = /certificate ([0-9a-f-]{36})/.exec(sign.out)![1]!;
    expect(sign.out).toContain(`keyportal download --certificate ${certId} --format pem --out cli-client.pem`);

    const status = await cli(["status", "--csr", csrId], env);
    expect(status.out).toContain("SIGNED");
    expect(status.out).toContain(`next: keyportal download --certificate ${certId}`);

    for (const format of ["pem", "der", "p7b", "chain"]) {
      const downloaded = await cli(["download", "--certificate", certId, "--format", format, "--out", file(`cert.${format}`)], env);
      expect(downloaded.code, downloaded.err).toBe(0);
    }
    const certKey = openssl(["x509", "-in", file("cert.pem"), "-noout", "-pubkey"]);
    expect(certKey.trim()).toBe(openssl(["pkey", "-in", key, "-pubout"]).trim());

    // The CA chain from the CLI verifies it, as the README says.
    const ca = await cli(["ca", "--environment", "mtf", "--out", file("mtf-chain.pem")], { KEYPORTAL_URL: server.url });
    expect(ca.code, ca.err).toBe(0);
    expect(openssl(["verify", "-CAfile", file("mtf-chain.pem"), file("cert.pem")])).toContain(": OK");
    const printed = await cli(["ca", "--environment", "MTF", "--root"], { KEYPORTAL_URL: server.url });
    expect(printed.out).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----$/);
  });

  it("should show pending CSRs and active certificates when status has no argument", async () => {
    const pendingId = await submitted("Pending Overview", "SIGNING");
    const issued = await signed("Overview Active");
    const overview = await cli(["status"], env);
    expect(overview.code, overview.err).toBe(0);
    expect(overview.out).toContain(org.name);
    expect(overview.out).toContain(pendingId);
    expect(overview.out).toContain(issued.id);
    const json = JSON.parse((await cli(["status", "--json"], env)).out) as { pendingCsrs: { nodes: Array<{ id: string }> } };
    expect(json.pendingCsrs.nodes.map((n) => n.id)).toContain(pendingId);
  });

  it("should renew with a fresh key made locally, then revoke and report a compromise", async () => {
    const old = await signed("Renew Me");
    const renew = await cli(["renew", "--certificate", old.id, "--key", file("renewed.key"), "--out", file("renewed.csr"), "--json"], env);
    expect(renew.code, renew.err).toBe(0);
    const renewed = JSON.parse(renew.out) as { csr: { id: string; status: string; renewalOf: string } };
    expect(renewed.csr).toMatchObject({ status: "PENDING", renewalOf: old.id });
    expect(statSync(file("renewed.key")).mode & 0o777).toBe(0o600);
    expect(openssl(["req", "-in", file("renewed.csr"), "-noout", "-subject"])).toContain("CN = Renew Me");
    const { certificateSigningRequest } = await server.ok<{ certificateSigningRequest: { renewalOf: { id: string } } }>(
      `query($id: ID!) { certificateSigningRequest(id: $id) { renewalOf { id } } }`,
      { id: renewed.csr.id },
    );
    expect(certificateSigningRequest.renewalOf.id).toBe(old.id);

    const revoked = await cli(["revoke", "--certificate", old.id, "--reason", "superseded"], env);
    expect(revoked.code, revoked.err).toBe(0);
    expect(revoked.out).toContain("REVOKED");
    const again = await cli(["revoke", "--certificate", old.id, "--reason", "SUPERSEDED"], env);
    expect(again.code).toBe(EXIT.FAILED);
    expect(again.err).toContain("[CONFLICT/ALREADY_REVOKED]");
    const againJson = await cli(["revoke", "--certificate", old.id, "--reason", "SUPERSEDED", "--json"], env);
    expect(JSON.parse(againJson.err)).toMatchObject({ error: { code: "CONFLICT", reason: "ALREADY_REVOKED", exitCode: 1 } });

    const lost = await signed("Lost Laptop");
    const compromised = await cli(["compromise", "--certificate", lost.id, "--note", "laptop stolen", "--json"], env);
    expect(compromised.code, compromised.err).toBe(0);
    expect(JSON.parse(compromised.out)).toMatchObject({ id: lost.id, status: "REVOKED", revocationReason: "KEY_COMPROMISE" });
  });

  it("should let the operator reject, and map refusals to the documented exit codes", async () => {
    const csrId = await submitted("Reject Me");
    const rejected = await cli(["reject", "--csr", csrId, "--reason", "CN must name the host"], operator);
    expect(rejected.code, rejected.err).toBe(0);
    expect((await cli(["status", "--csr", csrId], env)).out).toContain("rejected: CN must name the host");
    const officerSigns = await cli(["sign", "--csr", await submitted("Not Yours")], env);
    expect(officerSigns.code).toBe(EXIT.FORBIDDEN);
    const missing = await cli(["status", "--certificate", "2f1c0b9e-5d0a-4a47-9a59-3c9e1f7d1a20"], env);
    expect(missing.code).toBe(EXIT.NOT_FOUND);
    const badToken = await cli(["status"], { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: "kp_not_a_token" });
    expect(badToken.code).toBe(EXIT.UNAUTHENTICATED);
    expect(badToken.err).toContain("refused the token");
    const missingFile = await cli(["submit", "--csr", file("nope.csr"), "--kind", "SIGNING", "--environment", "MTF", "--organization-id", org.id], env);
    expect(missingFile.code).toBe(EXIT.FAILED);
    expect(missingFile.err).toContain("does not exist");
  });

  it("should sign a PRODUCTION request only after another operator's approve", async () => {
    const made = await cli(["csr", "--kind", "SIGNING", "--cn", "Dual Control", "--organization-id", org.id, "--key", file("dual.key"), "--out", file("dual.csr")], env);
    expect(made.code, made.err).toBe(0);
    const sub = await cli(["submit", "--csr", file("dual.csr"), "--kind", "SIGNING", "--environment", "PRODUCTION", "--organization-id", org.id, "--json"], env);
    expect(sub.code, sub.err).toBe(0);
    const csrId = (JSON.parse(sub.out) as { id: string }).id;

    const early = await cli(["sign", "--csr", csrId], operator);
    expect(early.code).toBe(EXIT.FAILED);
    expect(early.err).toContain("[PRECONDITION_FAILED/SECOND_APPROVAL_REQUIRED]");
    const approved = await cli(["approve", "--csr", csrId], operator);
    expect(approved.code, approved.err).toBe(0);
    expect(approved.out).toContain(`a different operator signs it: keyportal sign --csr ${csrId}`);
    const byApprover = await cli(["sign", "--csr", csrId, "--json"], operator);
    expect(JSON.parse(byApprover.err)).toMatchObject({ error: { code: "PRECONDITION_FAILED", reason: "SAME_OPERATOR" } });
    const other = await secondOperator(server);
    const signed = await cli(["sign", "--csr", csrId, "--json"], { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: other.token });
    expect(signed.code, signed.err).toBe(0);
    expect(JSON.parse(signed.out)).toMatchObject({ environment: "PRODUCTION", kind: "SIGNING" });
    const officerApproves = await cli(["approve", "--csr", csrId], env);
    expect(officerApproves.code).toBe(EXIT.FORBIDDEN);
  });

  it("should list, approve, decline and revoke delegations", async () => {
    const msp = await createOrganization(server, { kind: "MSP", country: "NL" });
    const request = (environment: string) =>
      server.ok<{ requestDelegation: { id: string } }>(
        `mutation($input: RequestDelegationInput!) { requestDelegation(input: $input) { id } }`,
        { input: { participantId: org.id, mspId: msp.id, kinds: ["MTLS_CLIENT"], environment, note: "ops" } },
      );
    const first = (await request("MTF")).requestDelegation.id;
    const second = (await request("PRODUCTION")).requestDelegation.id;
    const listed = await cli(["delegations", "list", "--status", "pending_approval"], env);
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out).toContain(first);
    expect(listed.out).toContain(second);
    expect((await cli(["delegations", "approve", "--delegation", first], env)).out).toContain(`${first}  ACTIVE`);
    const declined = await cli(["delegations", "decline", "--delegation", second, "--reason", "not now", "--json"], env);
    expect(JSON.parse(declined.out)).toMatchObject({ id: second, status: "DECLINED" });
    expect((await cli(["delegations", "revoke", "--delegation", first], env)).out).toContain(`${first}  REVOKED`);
  });

  it("should refuse to overwrite an existing key file and make RSA keys for ENCRYPTION by default", async () => {
    const key = file("again.key");
    const args = ["csr", "--kind", "SIGNING", "--cn", "Twice", "--org", org.name, "--country", "NL", "--key", key, "--out", file("a.csr")];
    expect((await cli(args, env)).code).toBe(0);
    const second = await cli([...args.slice(0, -1), file("b.csr")], env);
    expect(second.code).toBe(EXIT.FAILED);
    expect(second.err).toContain("refusing to overwrite");
    const enc = await cli(["csr", "--kind", "ENCRYPTION", "--cn", "Enc", "--org", org.name, "--country", "NL", "--key", file("enc.key"), "--out", file("enc.csr")], env);
    expect(enc.code).toBe(0);
    expect(openssl(["pkey", "-in", file("enc.key"), "-noout", "-text"])).toContain("2048 bit");
  });
});
