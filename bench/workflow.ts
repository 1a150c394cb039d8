/**
 * The officer/operator workflow over HTTP on the embedded SQLite database:
 * submitCsr (parse, checks, audit, notification, emails) and signCsr
 * (issuance, audit, notification, emails), one at a time and 16 in flight,
 * against `{ me { role } }` in the same run. Each mutation is one
 * transaction, so this is what an operator's batch signing sees.
 */
import "reflect-metadata";
import { randomBytes, webcrypto } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as x509 from "@peculiar/x509";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { measure, measureConcurrent, type BenchResult } from "./measure.js";

const crypto = webcrypto as unknown as Crypto;

async function csrPem(organization: string, cn: string): Promise<string> {
  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ C: ["GB"] }, { O: [organization] }, { CN: [cn] }], keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } },
    crypto,
  );
  return csr.toString("pem");
}

export async function workflowBench(count: number): Promise<BenchResult[]> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-workflow-"));
  const token = `kp_bench_${randomBytes(24).toString("base64url")}`;
  const app = await createApp(loadConfig({ KEYPORTAL_DATA_DIR: dataDir, LOG_LEVEL: "silent", PORT: "0", KEYPORTAL_BOOTSTRAP_TOKEN: token }));
  try {
    const { url } = await app.start();
    const post = async <T>(query: string, variables: Record<string, unknown>, bearer = token): Promise<T> => {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as { data?: T; errors?: unknown[] };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body.data!;
    };
    const name = "Workflow Bank";
    const { createOrganization: org } = await post<{ createOrganization: { id: string } }>(
      `mutation { createOrganization(input: { name: "${name}", kind: PARTICIPANT, contactEmail: "pki@workflow.example", country: "GB" }) { id } }`,
      {},
    );
    let officerToken = "";
    for (const email of ["a@workflow.example", "b@workflow.example"]) {
      await post(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, { input: { organizationId: org.id, name: email, email } });
      // Each officer enrolls with the code mailed to them (the file sink under the data directory).
      const code = await enrollmentCodeFromMail(path.join(dataDir, "mail"), email);
      officerToken = (await post<{ enrollOfficer: { token: string } }>(`mutation($code: String!) { enrollOfficer(code: $code, label: "bench") { token } }`, { code })).enrollOfficer.token;
    }
    // Warm-up and measured runs each take fresh CSRs: a key may be submitted once.
    const total = 2 * (count + 20);
    const pems: string[] = [];
    for (let i = 0; i < total; i++) pems.push(await csrPem(name, `Workflow ${i}`));
    const pending: string[] = [];
    const submit = async () => {
      const { submitCsr } = await post<{ submitCsr: { id: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem: pems.pop()! } },
        officerToken,
      );
      pending.push(submitCsr.id);
    };
    const sign = () => post(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { id } }`, { id: pending.pop()! });
    const me = await measure("{ me { role } } (baseline)", count, () => post(`{ me { role } }`, {}));
    const submitted = await measure("submitCsr (EC P-256 CSR)", count, submit);
    const signedSequential = await measure("signCsr, one at a time", Math.floor(count / 2), sign, 10);
    const signedConcurrent = await measureConcurrent("signCsr, 16 in flight", Math.floor(count / 2), 16, sign, 10);
    return [me, submitted, signedSequential, signedConcurrent];
  } finally {
    await app.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The enrollment code in the .eml file mailed to `email`, once it is written. */
export async function enrollmentCodeFromMail(mailDir: string, email: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    for (const file of existsSync(mailDir) ? readdirSync(mailDir).filter((f) => f.endsWith(".eml")) : []) {
      const text = readFileSync(path.join(mailDir, file), "utf8");
      const code = text.includes(`To: ${email}`) ? /^Enrollment code: (\S+)$/m.exec(text)?.[1] : undefined;
      if (code) return code;
    }
    if (Date.now() > deadline) throw new Error(`no enrollment email to ${email}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
