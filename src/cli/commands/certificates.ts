/** download, ca, revoke, compromise: certificates once issued. */
import { promises as fs } from "node:fs";
import { Environment, RevocationReason } from "../../kernel/domain.js";
import { CliError, EXIT } from "../client.js";
import { type Command, idOption, need, oneOf, optionalString } from "../command.js";

const ENVIRONMENTS = Object.values(Environment);
const FORMATS: Record<string, string> = { pem: "pem", der: "der", p7b: "p7b", chain: "chain.pem" };
/** KEY_COMPROMISE has its own command (it also blocks the key for good). */
const REVOKE_REASONS = Object.values(RevocationReason).filter((r) => r !== RevocationReason.KEY_COMPROMISE);

async function writeOut(target: string, body: Buffer): Promise<void> {
  try {
    await fs.writeFile(target, body);
  } catch (error) {
    throw new CliError(`cannot write ${target} (${(error as NodeJS.ErrnoException).code})`);
  }
}

export const downloadCommand: Command = {
  name: "download",
  summary: "download an issued certificate as PEM, DER, PKCS#7 or PEM chain",
  remote: true,
  options: {
    certificate: { type: "string", value: "<id>", description: "the certificate id (printed by watch, status and sign)", required: true },
    format: { type: "string", value: "<format>", description: `${Object.keys(FORMATS).join("|")} (default pem; chain = leaf, issuing CA, root)` },
    out: { type: "string", value: "<file>", description: "where to write it (default <id>.<format>)" },
  },
  examples: ["keyportal download --certificate <certificate id> --format pem --out acme-client.pem"],
  async run(ctx) {
    const id = idOption(ctx.values, "certificate");
    const format = FORMATS[(optionalString(ctx.values, "format") ?? "pem").toLowerCase()];
    if (!format) throw new CliError(`--format must be one of ${Object.keys(FORMATS).join(", ")}`, EXIT.USAGE);
    const client = await ctx.connect();
    const path = `/certificates/${id}.${format}`;
    const body = await client.download(path);
    const target = optionalString(ctx.values, "out") ?? `${id}.${format}`;
    await writeOut(target, body);
    return { text: `wrote ${target} (${body.length} bytes)`, json: { certificateId: id, format, file: target, bytes: body.length, url: new URL(path, client.baseUrl).toString() } };
  },
};

export const caCommand: Command = {
  name: "ca",
  summary: "fetch an environment's CA chain (issuing CA + root) or root, PEM; no token needed",
  details: "Prints the PEM unless --out is given. Check a certificate with: openssl verify -CAfile <chain file> <certificate file>",
  remote: true,
  options: {
    environment: { type: "string", value: "<env>", description: ENVIRONMENTS.join("|"), required: true },
    root: { type: "boolean", description: "only the self-signed root (the trust anchor), instead of the chain" },
    out: { type: "string", value: "<file>", description: "write to this file instead of printing" },
  },
  examples: ["keyportal ca --environment MTF --out mtf-chain.pem", "keyportal ca --environment PRODUCTION --root --out production-root.pem"],
  async run(ctx) {
    const environment = oneOf(need(ctx.values, "environment"), ENVIRONMENTS, "environment");
    const file = ctx.values.root === true ? "root.pem" : "chain.pem";
    const client = await ctx.connect();
    const path = `/ca/${environment}/${file}`;
    const body = await client.download(path);
    const url = new URL(path, client.baseUrl).toString();
    const out = optionalString(ctx.values, "out");
    if (out) {
      await writeOut(out, body);
      return { text: `wrote ${out} (${environment} ${file === "root.pem" ? "root" : "issuing CA + root"}, from ${url})`, json: { environment, file: out, url } };
    }
    const pem = body.toString("utf8");
    return { text: pem.trimEnd(), json: { environment, url, pem } };
  },
};

interface RevokedView {
  id: string;
  status: string;
  serialNumber: string;
  revokedAt: string;
  revocationReason: string;
}

const REVOKED_FIELDS = "id status serialNumber revokedAt revocationReason";

export const revokeCommand: Command = {
  name: "revoke",
  summary: "revoke a certificate with an RFC 5280 reason (for a compromised key use compromise)",
  remote: true,
  options: {
    certificate: { type: "string", value: "<id>", description: "the certificate to revoke", required: true },
    reason: { type: "string", value: "<reason>", description: REVOKE_REASONS.join("|"), required: true },
  },
  examples: ["keyportal revoke --certificate <certificate id> --reason SUPERSEDED"],
  async run(ctx) {
    const id = idOption(ctx.values, "certificate");
    const raw = need(ctx.values, "reason");
    if (raw.toUpperCase() === RevocationReason.KEY_COMPROMISE) {
      throw new CliError("for a compromised key use: keyportal compromise --certificate <id> (it also blocks the key for good)", EXIT.USAGE);
    }
    const reason = oneOf(raw, REVOKE_REASONS, "reason");
    const { revokeCertificate: c } = await (await ctx.connect()).graphql<{ revokeCertificate: RevokedView }>(
      `mutation($id: ID!, $reason: RevocationReason!) { revokeCertificate(certificateId: $id, reason: $reason) { ${REVOKED_FIELDS} } }`,
      { id, reason },
    );
    return { text: `certificate ${c.id} (serial ${c.serialNumber}): ${c.status} at ${c.revokedAt}, ${c.revocationReason}; listed on the next CRL`, json: c };
  },
};

export const compromiseCommand: Command = {
  name: "compromise",
  summary: "report a key compromise: revokes at once (KEY_COMPROMISE) and blocks the key from any later CSR",
  remote: true,
  options: {
    certificate: { type: "string", value: "<id>", description: "the certificate whose private key is compromised", required: true },
    note: { type: "string", value: "<text>", description: "what happened, for the audit log" },
  },
  examples: ['keyportal compromise --certificate <certificate id> --note "laptop stolen"'],
  async run(ctx) {
    const id = idOption(ctx.values, "certificate");
    const { reportKeyCompromise: c } = await (await ctx.connect()).graphql<{ reportKeyCompromise: RevokedView }>(
      `mutation($id: ID!, $note: String) { reportKeyCompromise(certificateId: $id, note: $note) { ${REVOKED_FIELDS} } }`,
      { id, note: optionalString(ctx.values, "note") ?? null },
    );
    return {
      text: `certificate ${c.id} (serial ${c.serialNumber}): ${c.status} at ${c.revokedAt}, KEY_COMPROMISE; the key is blocked\nnext: make a new key: keyportal csr ... and submit it`,
      json: c,
    };
  },
};
