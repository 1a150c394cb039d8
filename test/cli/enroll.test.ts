import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/commands.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, env, (l) => out.push(l), (l) => err.push(l));
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("keyportal enroll", () => {
  let server: TestServer;
  let org: TestOrganization;

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { officerCount: 0 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should exchange the emailed code for a token, print it once and write no file", async () => {
    const email = "cli.enrollee@cli.example";
    await server.ok(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, {
      input: { organizationId: org.id, name: "Cli Enrollee", email },
    });
    const code = await server.enrollmentCode(email);
    const before = readdirSync(process.cwd()).sort();
    // No token in the environment: enrollment needs none (and would not use one).
    const result = await cli(["enroll", "--code", code, "--label", "workstation"], { KEYPORTAL_URL: server.url });
    expect(result.code, result.err).toBe(0);
    const token = /^(kp_[A-Za-z0-9_-]{43})$/m.exec(result.out)?.[1];
    expect(token, result.out).toBeDefined();
    expect(result.out).toContain("Cli Enrollee <cli.enrollee@cli.example>");
    expect(result.out.split(token!)).toHaveLength(2);
    expect(readdirSync(process.cwd()).sort()).toEqual(before);
    const { me } = await server.ok<{ me: { officer: { email: string; enrolled: boolean } } }>(`{ me { officer { email enrolled } } }`, {}, token!);
    expect(me.officer).toEqual({ email, enrolled: true });
    const labels = (await server.app.db.dataSource.query(`SELECT label FROM api_tokens t JOIN officers o ON o.id = t."officerId" WHERE o.email = ?`, [email])) as Array<{ label: string }>;
    expect(labels).toEqual([{ label: "workstation" }]);
  });

  it("should say why a used or wrong code is refused, with a non-zero exit code", async () => {
    const result = await cli(["enroll", "--code", "kpe_not_a_code"], { KEYPORTAL_URL: server.url });
    expect(result.code).toBe(1);
    expect(result.err).toContain("BAD_USER_INPUT/ENROLLMENT_CODE_INVALID");
    expect(result.out).toBe("");
    const missing = await cli(["enroll"], { KEYPORTAL_URL: server.url });
    expect(missing.code).toBe(64); // a wrong command line (README: exit codes)
    expect(missing.err).toContain("--code is required");
  });
});
