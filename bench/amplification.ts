/**
 * Query amplification: p50 of a normal `{ me { role } }` while four clients
 * at once send introspection amplification (issue 12, finding 1), against its
 * own baseline in the same run. The compiled server runs as a child process
 * with its default limits and quotas; victim and attackers are here, each
 * with its own token (the attackers' quotas are theirs, not the victim's).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { getIntrospectionQuery } from "graphql";
import { rssMb, waitReady } from "./fanout.js";
import { type BenchResult, measure, report } from "./measure.js";
import { enrollmentCodeFromMail } from "./workflow.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const AMPLIFIER = "__schema { types { fields { args { name } type { ofType { name } } } } }";
/** The request: 500 aliased introspections (14.1 MB answered before the cost limit followed result size). */
const FIVE_HUNDRED_ALIASES = `{ ${Array.from({ length: 500 }, (_, i) => `a${i}: ${AMPLIFIER}`).join(" ")} }`;
/** The costliest introspection still allowed with a token: GraphiQL's full one. */
const FULL_INTROSPECTION = getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true });

export interface AmplificationRun {
  results: BenchResult[];
  notes: string[];
}

export async function amplificationBench(count = 300, port = 4874): Promise<AmplificationRun> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-amplification-"));
  const operator = `kp_bench_${randomBytes(24).toString("base64url")}`;
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [path.join(ROOT, "dist", "src", "main.js")], {
    env: { PATH: process.env.PATH, PORT: String(port), HOST: "127.0.0.1", KEYPORTAL_DATA_DIR: dataDir, KEYPORTAL_BOOTSTRAP_TOKEN: operator, LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const post = async (token: string, query: string, variables?: unknown) => {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const text = await res.text();
    return { status: res.status, bytes: text.length, json: JSON.parse(text) as { data?: Record<string, { id: string; token: string }> } };
  };
  try {
    await waitReady(url, child);
    const org = await post(operator, "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }", {
      i: { name: "Bench Amplification Bank", kind: "PARTICIPANT", contactEmail: "pki@amp.example", country: "GB" },
    });
    const tokens: string[] = [];
    for (let i = 0; i < 5; i++) {
      const officer = await post(operator, "mutation($i: RegisterOfficerInput!) { registerOfficer(input: $i) { id } }", {
        i: { organizationId: org.json.data!.createOrganization!.id, name: `Bench ${i}`, email: `bench${i}@amp.example` },
      });
      if (!officer.json.data?.registerOfficer) throw new Error(`registerOfficer failed: ${JSON.stringify(officer.json)}`);
      // Each officer enrolls with the code mailed to them (the file sink under the data directory); nobody mints another's token.
      const code = await enrollmentCodeFromMail(path.join(dataDir, "mail"), `bench${i}@amp.example`);
      const enrolled = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: 'mutation($code: String!) { enrollOfficer(code: $code, label: "bench") { token } }', variables: { code } }),
      });
      tokens.push(((await enrolled.json()) as { data: { enrollOfficer: { token: string } } }).data.enrollOfficer.token);
    }
    const [victim, ...attackers] = tokens as [string, ...string[]];
    const me = () => post(victim, "{ me { role } }");

    const results: BenchResult[] = [await measure("{ me { role } } alone", count, me)];
    const notes: string[] = [];
    for (const [name, query] of [
      ["500 aliased introspections", FIVE_HUNDRED_ALIASES],
      ["full introspection (allowed)", FULL_INTROSPECTION],
    ] as const) {
      let running = true;
      const statuses = new Map<number, number>();
      let bytes = 0;
      let peakRss = 0;
      const attacks = attackers.map(async (token) => {
        while (running) {
          const res = await post(token, query);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          bytes += res.bytes;
          peakRss = Math.max(peakRss, rssMb(child.pid!));
        }
      });
      results.push(await measure(`{ me { role } } under 4 concurrent: ${name}`, count, me));
      running = false;
      await Promise.all(attacks);
      const answered = [...statuses].map(([status, n]) => `${n} x ${status}`).join(", ");
      notes.push(`${name}: attackers got ${answered}; ${(bytes / 1e6).toFixed(1)} MB answered; server RSS peak ${peakRss.toFixed(0)} MB`);
    }
    return { results, notes };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const run = await amplificationBench(Number(process.env.BENCH_COUNT ?? "300"));
  report("Query amplification (compiled server, SQLite, default limits)", run.results, run.results[0]);
  for (const r of run.results.slice(1)) console.log(`  ${r.name}: p50 ${(r.p50Ms / run.results[0]!.p50Ms).toFixed(2)}x the baseline p50`);
  for (const note of run.notes) console.log(`  ${note}`);
}
