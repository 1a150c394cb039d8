/**
 * The README's "Five minutes" walkthrough, its shell part exactly as written
 * (steps 5 to 7), against the compiled server started as `npm start` starts
 * it: the commands are read from README.md, the placeholders filled in, and
 * each line run with bash in the repository. The GraphiQL steps are in
 * test/browser/graphiql.test.ts; here they are the same mutations over HTTP.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureCompiled, listeningUrl, ROOT, type ServerProcess, spawnServer } from "../foundation/helpers/compiled.js";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";

const hasOpenssl = await available("openssl");

/** The shell lines of the README's walkthrough, in order: every line of its sh blocks, and the inline `... keyportal -- sign` command. */
export function walkthroughCommands(readme: string): string[] {
  const start = readme.indexOf("## Five minutes in GraphiQL");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 10));
  const commands: string[] = [];
  const pattern = /```sh\n([\s\S]*?)```|`([^`\n]*keyportal -- sign[^`\n]*)`/g;
  for (let m = pattern.exec(section); m; m = pattern.exec(section)) {
    if (m[2]) commands.push(m[2]);
    else for (const line of m[1]!.split("\n").map((l) => l.trim())) if (line && !line.startsWith("#")) commands.push(line);
  }
  return commands;
}

describe.skipIf(!hasOpenssl)("the README walkthrough, as written", () => {
  const tmp = makeTempDir("kp-walkthrough-");
  const home = path.join(tmp.path, "home");
  const dataDir = path.join(tmp.path, "data");
  let proc: ServerProcess;
  let url: string;
  let operatorToken: string;

  beforeAll(async () => {
    await ensureCompiled();
    // As `npm start` does by default: no bootstrap token given, so it is generated into the data directory.
    proc = spawnServer({ HOST: "127.0.0.1", PORT: "0", KEYPORTAL_DATA_DIR: dataDir, HOME: home, LOG_FORMAT: "json" });
    url = await listeningUrl(proc);
    operatorToken = readFileSync(path.join(dataDir, "bootstrap-token"), "utf8").trim();
  }, 240_000);

  afterAll(async () => {
    if (proc && proc.child.exitCode === null) {
      proc.child.kill("SIGTERM");
      await proc.exited;
    }
    tmp.cleanup();
  });

  async function gql<T>(query: string, token: string): Promise<T> {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query }),
    });
    const body = (await res.json()) as { data?: T; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data!;
  }

  /** The code on the "Enrollment code:" line of the mail to this address, as the README reads it from data/mail/. */
  async function enrollmentCode(email: string): Promise<string> {
    const dir = path.join(dataDir, "mail");
    for (let i = 0; i < 200; i++) {
      for (const file of existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".eml")) : []) {
        const text = readFileSync(path.join(dir, file), "utf8");
        const code = text.includes(`To: ${email}`) ? /^Enrollment code: (\S+)$/m.exec(text)?.[1] : undefined;
        if (code) return code;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no enrollment email to ${email} in ${dir}`);
  }

  it("should run the README's shell steps in a shell, from enrollment to a certificate openssl verifies", async () => {
    // Steps 2 and 3, as typed into GraphiQL.
    const { createOrganization: org } = await gql<{ createOrganization: { id: string } }>(
      `mutation { createOrganization(input: { name: "Acme Bank", kind: PARTICIPANT, contactEmail: "pki@acme.example", country: "GB" }) { id } }`,
      operatorToken,
    );
    const officer = async (name: string) =>
      (await gql<{ registerOfficer: { id: string } }>(`mutation { registerOfficer(input: { organizationId: "${org.id}", name: "${name}", email: "${name.toLowerCase()}@acme.example" }) { id } }`, operatorToken))
        .registerOfficer.id;
    await officer("Ada");
    await officer("Bob");
    // Bob enrolls in GraphiQL (step 4's mutation, no token); Ada with the CLI line of step 4, below.
    const bobCode = await enrollmentCode("bob@acme.example");
    const bobRes = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: `mutation { enrollOfficer(code: "${bobCode}", label: "laptop") { officer { enrolled } } }` }),
    });
    expect(await bobRes.json()).toEqual({ data: { enrollOfficer: { officer: { enrolled: true } } } });
    let adaToken = "";

    const commands = walkthroughCommands(readFileSync(path.join(ROOT, "README.md"), "utf8"));
    expect(commands.some((c) => c.includes("keyportal -- csr"))).toBe(true);
    expect(commands.some((c) => c.startsWith("openssl verify"))).toBe(true);
    expect(commands.some((c) => c.includes("keyportal -- enroll --code kpe_..."))).toBe(true);
    const ids: Record<string, string> = { "<org id>": org.id, "kpe_...": await enrollmentCode("ada@acme.example") };
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, KEYPORTAL_URL: url };
    let ran = 0;
    for (const written of commands) {
      if (written.startsWith("export KEYPORTAL_TOKEN=")) continue; // the placeholder line: the token is set below
      let command = written.replace("data/bootstrap-token", path.join(dataDir, "bootstrap-token"));
      for (const [placeholder, value] of Object.entries(ids)) command = command.split(placeholder).join(value);
      expect(command, `a placeholder the test does not know in: ${written}`).not.toMatch(/<[a-z' ]+>/);
      const { stdout, stderr } = await promisify(execFile)("bash", ["-euo", "pipefail", "-c", command], {
        cwd: ROOT,
        env: { ...env, ...(adaToken ? { KEYPORTAL_TOKEN: adaToken } : {}) },
        timeout: 60_000,
      }).catch((error: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(`README command failed: ${command}\n${error.stderr ?? ""}${error.stdout ?? ""}${error.message}`);
      });
      ran += 1;
      const enrolled = /^(kp_[A-Za-z0-9_-]{20,})$/m.exec(stdout);
      if (command.includes("keyportal -- enroll") && enrolled) adaToken = enrolled[1]!;
      const csr = /submitted ([0-9a-f-]{36})/.exec(stdout);
      if (csr) ids["<csr id>"] = csr[1]!;
      const certificate = /signed: certificate ([0-9a-f-]{36})/.exec(stdout);
      if (certificate) ids["<certificate id>"] = certificate[1]!;
      if (command.startsWith("openssl verify")) expect(stdout).toMatch(/acme-client\.pem: OK/);
      expect(stderr).not.toMatch(/warning/i);
    }
    expect(adaToken).not.toBe("");
    expect(ran).toBeGreaterThanOrEqual(8);
    // The keys are where the README says, outside the repository, private.
    const key = path.join(home, "keyportal-keys", "acme-client.key");
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(home, "keyportal-keys")).mode & 0o777).toBe(0o700);
    expect(existsSync(path.join(ROOT, "key.pem"))).toBe(false);
    rmSync(path.join(home, "keyportal-keys"), { recursive: true, force: true });
  });
});
