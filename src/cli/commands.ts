/**
 * keyportal: the officer's command line. Keys are made and kept on this
 * machine; only the CSR goes to the server.
 *
 *   keyportal enroll --code <code from the enrollment email> [--label laptop]
 *   keyportal csr --kind MTLS_CLIENT --cn "Acme Client" --organization-id <id> --key key.pem --out req.csr
 *   keyportal submit --csr req.csr --kind MTLS_CLIENT --environment MTF --organization-id <id>
 *   keyportal status --csr <id> | --certificate <id>
 *   keyportal download --certificate <id> --format pem|der|p7b|chain --out cert.pem
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import { parseArgs } from "node:util";
import { CliError, KeyPortalClient, watchNotifications } from "./client.js";
import { type CliKeyType, createKeyAndCsr, KEY_TYPES } from "./keygen.js";

const KINDS = ["MTLS_CLIENT", "SIGNING", "ENCRYPTION"];
const ENVIRONMENTS = ["MTF", "PRODUCTION"];
const FORMATS: Record<string, string> = { pem: "pem", der: "der", p7b: "p7b", chain: "chain.pem" };

const USAGE = `usage: keyportal <command> [options]

commands:
  enroll     exchange the one-time code from your enrollment email for your first API token
             --code <code>  --label <name for the token> (default: this machine's host name)
             prints the token once and stores it nowhere: keep it (e.g. in KEYPORTAL_TOKEN)
  csr        make a key pair and a CSR on this machine (the key never leaves it)
             --kind MTLS_CLIENT|SIGNING|ENCRYPTION  --cn <common name>
             --key-type ec-p256|ec-p384|rsa-2048|rsa-3072|rsa-4096 (default ec-p256; rsa-2048 for ENCRYPTION)
             subject O and C from --organization-id <id> (asks the server) or from --org <name> --country <CC>
             --key <file> (default key.pem, mode 0600, never overwritten)  --out <file> (default request.csr)
  submit     --csr <file> --kind <kind> --environment MTF|PRODUCTION --organization-id <id>
  status     --csr <id> | --certificate <id>
  download   --certificate <id> --format pem|der|p7b|chain --out <file>
  watch      follow notifications live until Ctrl-C: one line each, or --json for JSON lines
             --after <id> (replay everything after that cursor first)  --types CSR_SIGNED,CERTIFICATE_EXPIRING,...

connection: --url <url> (or KEYPORTAL_URL; default http://127.0.0.1:4000)
            --token <token> | --token-file <file> (or KEYPORTAL_TOKEN)
`;

function need(values: Record<string, string | boolean | undefined>, name: string): string {
  const value = values[name];
  if (typeof value !== "string" || value.trim() === "") throw new CliError(`--${name} is required\n\n${USAGE}`);
  return value.trim();
}

function oneOf(value: string, allowed: string[], name: string): string {
  const upper = value.toUpperCase();
  if (!allowed.includes(upper)) throw new CliError(`--${name} must be one of ${allowed.join(", ")}`);
  return upper;
}

async function readFileFor(path: string, what: string): Promise<string> {
  try {
    return await fs.readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(code === "ENOENT" ? `${what} ${path} does not exist` : `cannot read ${what} ${path} (${code})`);
  }
}

async function tokenOf(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (values["token-file"]) return (await readFileFor(values["token-file"] as string, "token file")).trim();
  return (values.token as string | undefined) ?? env.KEYPORTAL_TOKEN;
}

async function connect(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): Promise<KeyPortalClient> {
  const url = (values.url as string | undefined) ?? env.KEYPORTAL_URL ?? "http://127.0.0.1:4000";
  return new KeyPortalClient(url, await tokenOf(values, env));
}

async function run(argv: string[], env: NodeJS.ProcessEnv, out: (line: string) => void, signal: AbortSignal): Promise<void> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    out(USAGE);
    return;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      url: { type: "string" },
      token: { type: "string" },
      "token-file": { type: "string" },
      kind: { type: "string" },
      environment: { type: "string" },
      "organization-id": { type: "string" },
      org: { type: "string" },
      country: { type: "string" },
      ou: { type: "string" },
      cn: { type: "string" },
      "key-type": { type: "string" },
      key: { type: "string" },
      out: { type: "string" },
      csr: { type: "string" },
      certificate: { type: "string" },
      format: { type: "string" },
      after: { type: "string" },
      types: { type: "string" },
      json: { type: "boolean" },
      code: { type: "string" },
      label: { type: "string" },
    },
    strict: true,
  });

  switch (command) {
    case "enroll": {
      // No token: the code is the proof. Nothing is written to disk.
      const url = (values.url as string | undefined) ?? env.KEYPORTAL_URL ?? "http://127.0.0.1:4000";
      const client = new KeyPortalClient(url, undefined);
      const label = (values.label ?? os.hostname()).trim() || "keyportal cli";
      const data = await client.graphql<{ enrollOfficer: { token: string; officer: { name: string; email: string } } }>(
        `mutation($code: String!, $label: String!) { enrollOfficer(code: $code, label: $label) { token officer { name email } } }`,
        { code: need(values, "code"), label },
      );
      const grant = data.enrollOfficer;
      out(`enrolled ${grant.officer.name} <${grant.officer.email}>; your API token (shown once, stored nowhere):\n${grant.token}`);
      return;
    }
    case "csr": {
      const kind = oneOf(need(values, "kind"), KINDS, "kind");
      const keyType = (values["key-type"] ?? (kind === "ENCRYPTION" ? "rsa-2048" : "ec-p256")).toLowerCase() as CliKeyType;
      if (!KEY_TYPES.includes(keyType)) throw new CliError(`--key-type must be one of ${KEY_TYPES.join(", ")}`);
      let organization = values.org;
      let country = values.country;
      if (values["organization-id"]) {
        const client = await connect(values, env);
        const data = await client.graphql<{ organization: { name: string; country: string } | null }>(
          `query($id: ID!) { organization(id: $id) { name country } }`,
          { id: values["organization-id"] },
        );
        if (!data.organization) throw new CliError(`organization ${values["organization-id"]} not found (or not visible with this token)`);
        organization = data.organization.name;
        country = data.organization.country;
      }
      if (!organization || !country) throw new CliError("give --organization-id, or both --org and --country");
      const keyPath = values.key ?? "key.pem";
      const csrPath = values.out ?? "request.csr";
      try {
        await createKeyAndCsr({
          keyType,
          subject: { commonName: need(values, "cn"), organization, country: country.toUpperCase(), organizationalUnit: values.ou },
          keyPath,
          csrPath,
        });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new CliError(`refusing to overwrite ${keyPath} or ${csrPath}`);
        throw error;
      }
      out(`private key: ${keyPath} (mode 0600; keep it here)\nCSR:         ${csrPath}`);
      return;
    }
    case "submit": {
      const client = await connect(values, env);
      const pem = await readFileFor(need(values, "csr"), "CSR file");
      const data = await client.graphql<{ submitCsr: { id: string; status: string; subject: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id status subject } }`,
        {
          input: {
            organizationId: need(values, "organization-id"),
            kind: oneOf(need(values, "kind"), KINDS, "kind"),
            environment: oneOf(need(values, "environment"), ENVIRONMENTS, "environment"),
            pem,
          },
        },
      );
      out(`submitted ${data.submitCsr.id}: ${data.submitCsr.status} ${data.submitCsr.subject}`);
      return;
    }
    case "status": {
      const client = await connect(values, env);
      if (values.csr) {
        const data = await client.graphql<{ certificateSigningRequest: { status: string; subject: string; rejectionReason: string | null; certificate: { id: string } | null } | null }>(
          `query($id: ID!) { certificateSigningRequest(id: $id) { status subject rejectionReason certificate { id } } }`,
          { id: values.csr },
        );
        const csr = data.certificateSigningRequest;
        if (!csr) throw new CliError(`CSR ${values.csr} not found`, 4);
        out(`${csr.status} ${csr.subject}${csr.rejectionReason ? ` (rejected: ${csr.rejectionReason})` : ""}${csr.certificate ? `\ncertificate: ${csr.certificate.id}` : ""}`);
        return;
      }
      const id = need(values, "certificate");
      const data = await client.graphql<{ certificate: { status: string; subject: string; serialNumber: string; notAfter: string; daysUntilExpiry?: number } | null }>(
        `query($id: ID!) { certificate(id: $id) { status subject serialNumber notAfter } }`,
        { id },
      );
      if (!data.certificate) throw new CliError(`certificate ${id} not found`, 4);
      const c = data.certificate;
      out(`${c.status} ${c.subject}\nserial ${c.serialNumber}, valid until ${c.notAfter}`);
      return;
    }
    case "download": {
      const client = await connect(values, env);
      const format = FORMATS[(values.format ?? "pem").toLowerCase()];
      if (!format) throw new CliError(`--format must be one of ${Object.keys(FORMATS).join(", ")}`);
      const id = need(values, "certificate");
      if (!/^[0-9a-f-]{36}$/.test(id)) throw new CliError("--certificate must be a certificate id");
      const body = await client.download(`/certificates/${id}.${format}`);
      const target = values.out ?? `${id}.${format}`;
      await fs.writeFile(target, body);
      out(`wrote ${target} (${body.length} bytes)`);
      return;
    }
    case "watch": {
      const client = await connect(values, env);
      const types = values.types?.split(",").map((t) => t.trim().toUpperCase()).filter(Boolean);
      if (values.after !== undefined && !/^\d+$/.test(values.after)) throw new CliError("--after must be a notification id (a cursor printed by watch)");
      await watchNotifications(
        client,
        await tokenOf(values, env),
        { after: values.after, types },
        (n) => {
          if (values.json) out(JSON.stringify(n));
          else out(`${n.id}\t${n.occurredAt}\t${n.type}${n.daysUntilExpiry != null ? ` (${n.daysUntilExpiry} days)` : ""}\t${n.message}`);
        },
        signal,
      );
      return;
    }
    default:
      throw new CliError(`unknown command "${command}"\n\n${USAGE}`);
  }
}

export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  err: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  signal: AbortSignal = new AbortController().signal,
): Promise<number> {
  try {
    await run(argv, env, out, signal);
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      err(`keyportal: ${error.message}`);
      return error.exitCode;
    }
    if ((error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      err(`keyportal: ${(error as Error).message}\n\n${USAGE}`);
      return 1;
    }
    err(`keyportal: unexpected error: ${(error as Error).message}`);
    return 1;
  }
}
