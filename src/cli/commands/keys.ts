/** csr and renew: a new key pair and CSR made on this machine; the private key never leaves it. */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { CertificateKind } from "../../kernel/domain.js";
import { CliError, EXIT } from "../client.js";
import { type Command, type CommandContext, idOption, need, oneOf, optionalString, readFileFor, shellCommand } from "../command.js";
import { type CliKeyType, createKeyAndCsr, KEY_TYPES } from "../keygen.js";

const KINDS = Object.values(CertificateKind);

export const KEY_OPTIONS = {
  "key-type": {
    type: "string",
    value: "<type>",
    description: `${KEY_TYPES.join("|")} (default ec-p256; rsa-2048 for ENCRYPTION, which needs RSA)`,
  },
  key: { type: "string", value: "<file>", description: "where to write the private key (mode 0600, never overwritten); keep it outside any repository" },
  out: { type: "string", value: "<file>", description: "where to write the CSR (PEM)" },
} as const;

function keyTypeOf(values: CommandContext["values"], kind: CertificateKind): CliKeyType {
  const raw = (optionalString(values, "key-type") ?? (kind === CertificateKind.ENCRYPTION ? "rsa-2048" : "ec-p256")).toLowerCase();
  if (!(KEY_TYPES as string[]).includes(raw)) throw new CliError(`--key-type must be one of ${KEY_TYPES.join(", ")}`, EXIT.USAGE);
  return raw as CliKeyType;
}

/** The git work tree a path lies in, if any: private keys do not belong there. */
function gitWorkTreeOf(file: string): string | null {
  try {
    return execFileSync("git", ["-C", path.dirname(path.resolve(file)), "rev-parse", "--show-toplevel"], { stdio: ["ignore", "pipe", "ignore"], timeout: 5000 })
      .toString()
      .trim();
  } catch {
    return null;
  }
}

async function makeKeyAndCsr(
  ctx: CommandContext,
  kind: CertificateKind,
  subject: { commonName: string; organization: string; country: string; organizationalUnit?: string },
  defaults: { key: string; csr: string },
): Promise<{ keyPath: string; csrPath: string; csrPem: string; keyType: CliKeyType }> {
  const keyType = keyTypeOf(ctx.values, kind);
  const keyPath = optionalString(ctx.values, "key") ?? defaults.key;
  const csrPath = optionalString(ctx.values, "out") ?? defaults.csr;
  const repo = gitWorkTreeOf(keyPath);
  if (repo) ctx.info(`warning: ${keyPath} is inside the git work tree ${repo}; keep private keys out of repositories`);
  try {
    const { csrPem } = await createKeyAndCsr({ keyType, subject, keyPath, csrPath });
    return { keyPath, csrPath, csrPem, keyType };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new CliError(`refusing to overwrite ${keyPath} or ${csrPath}; choose other --key / --out files`);
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new CliError(`the directory of ${keyPath} or ${csrPath} does not exist`);
    throw error;
  }
}

export const csrCommand: Command = {
  name: "csr",
  summary: "make a key pair and a CSR on this machine (the private key never leaves it)",
  details: "The subject's O and C come from the organization (--organization-id asks the server) or from --org and --country.",
  remote: false,
  options: {
    kind: { type: "string", value: "<kind>", description: `${KINDS.join("|")}`, required: true },
    cn: { type: "string", value: "<name>", description: "subject common name, at most 64 characters", required: true },
    "organization-id": { type: "string", value: "<id>", description: "take O and C from this organization (needs a token)" },
    org: { type: "string", value: "<name>", description: "subject O, the organization's registered name (without --organization-id)" },
    country: { type: "string", value: "<CC>", description: "subject C, ISO 3166-1 alpha-2 (without --organization-id)" },
    ou: { type: "string", value: "<unit>", description: "subject OU, optional" },
    ...KEY_OPTIONS,
  },
  examples: [
    'keyportal csr --kind MTLS_CLIENT --cn "Acme Client" --organization-id <org id> --key ~/keyportal-keys/acme-client.key --out ~/keyportal-keys/acme-client.csr',
  ],
  async run(ctx) {
    const kind = oneOf(need(ctx.values, "kind"), KINDS, "kind");
    const commonName = need(ctx.values, "cn");
    let organization = optionalString(ctx.values, "org");
    let country = optionalString(ctx.values, "country");
    const organizationId = optionalString(ctx.values, "organization-id");
    if (organizationId) {
      const client = await ctx.connect();
      const data = await client.graphql<{ organization: { name: string; country: string } | null }>(`query($id: ID!) { organization(id: $id) { name country } }`, {
        id: organizationId,
      });
      if (!data.organization) throw new CliError(`organization ${organizationId} not found (or not visible with this token)`, EXIT.NOT_FOUND);
      organization = data.organization.name;
      country = data.organization.country;
    }
    if (!organization || !country) throw new CliError("give --organization-id, or both --org and --country", EXIT.USAGE);
    const made = await makeKeyAndCsr(
      ctx,
      kind,
      { commonName, organization, country: country.toUpperCase(), organizationalUnit: optionalString(ctx.values, "ou") },
      { key: "key.pem", csr: "request.csr" },
    );
    const next = shellCommand("submit", "--csr", made.csrPath, "--kind", kind, "--environment", "MTF", "--organization-id", organizationId ?? "<org id>");
    return {
      text: `private key: ${made.keyPath} (mode 0600; keep it on this machine)\nCSR:         ${made.csrPath}\nnext:        ${next}  (or --environment PRODUCTION)`,
      json: { keyPath: made.keyPath, csrPath: made.csrPath, keyType: made.keyType, kind, subject: { commonName, organization, country }, csrPem: made.csrPem },
    };
  },
};

interface RenewedCertificate {
  id: string;
  kind: CertificateKind;
  environment: string;
  commonName: string;
  serialNumber: string;
  organization: { id: string; name: string; country: string };
}

const RENEW = `mutation($input: RenewCertificateInput!) { renewCertificate(input: $input) { id status subject environment kind renewalOf { id } } }`;

export const renewCommand: Command = {
  name: "renew",
  summary: "renew a certificate: a fresh key and CSR made here (like csr), submitted as its renewal",
  details: "The new CSR keeps the certificate's kind, environment and subject (CN from the certificate unless --cn). Pass --csr to submit a CSR you made yourself instead.",
  remote: true,
  options: {
    certificate: { type: "string", value: "<id>", description: "the certificate to renew", required: true },
    cn: { type: "string", value: "<name>", description: "a different common name for the new certificate" },
    csr: { type: "string", value: "<file>", description: "submit this CSR (PEM) instead of making a key here" },
    ...KEY_OPTIONS,
  },
  examples: ["keyportal renew --certificate <certificate id> --key ~/keyportal-keys/acme-client-2027.key --out ~/keyportal-keys/acme-client-2027.csr"],
  async run(ctx) {
    const id = idOption(ctx.values, "certificate");
    const client = await ctx.connect();
    const { certificate } = await client.graphql<{ certificate: RenewedCertificate | null }>(
      `query($id: ID!) { certificate(id: $id) { id kind environment commonName serialNumber organization { id name country } } }`,
      { id },
    );
    if (!certificate) throw new CliError(`certificate ${id} not found (or not visible with this token)`, EXIT.NOT_FOUND);
    let made: { keyPath: string; csrPath: string; csrPem: string } | null = null;
    let pem: string;
    const csrFile = optionalString(ctx.values, "csr");
    if (csrFile) {
      pem = await readFileFor(csrFile, "CSR file");
    } else {
      made = await makeKeyAndCsr(
        ctx,
        certificate.kind,
        { commonName: optionalString(ctx.values, "cn") ?? certificate.commonName, organization: certificate.organization.name, country: certificate.organization.country },
        { key: `renew-${certificate.serialNumber.slice(0, 12)}.key`, csr: `renew-${certificate.serialNumber.slice(0, 12)}.csr` },
      );
      pem = made.csrPem;
    }
    const data = await client.graphql<{ renewCertificate: { id: string; status: string; subject: string } }>(RENEW, { input: { certificateId: id, pem } });
    const csr = data.renewCertificate;
    const lines = [
      ...(made ? [`private key: ${made.keyPath} (mode 0600; keep it on this machine)`, `CSR:         ${made.csrPath}`] : []),
      `submitted renewal ${csr.id}: ${csr.status} ${csr.subject} (renews ${certificate.id})`,
      `next:        ${shellCommand("status", "--csr", csr.id)}  (or keyportal watch --types CSR_SIGNED)`,
    ];
    return { text: lines.join("\n"), json: { csr: { ...csr, renewalOf: certificate.id }, keyPath: made?.keyPath ?? null, csrPath: made?.csrPath ?? csrFile } };
  },
};
