/** submit, status, cancel, whoami: an officer's CSRs and what state they are in. */
import { CertificateKind, Environment } from "../../kernel/domain.js";
import { CliError, EXIT } from "../client.js";
import { downloadCommand } from "../../next-steps.js";
import { type Command, idOption, need, oneOf, readFileFor, shellCommand } from "../command.js";
import { nameOf } from "../../pki/csr-extensions.js";

const KINDS = Object.values(CertificateKind);
const ENVIRONMENTS = Object.values(Environment);

export const downloadCommandFor = downloadCommand;

export const submitCommand: Command = {
  name: "submit",
  summary: "submit a CSR file for signing",
  remote: true,
  options: {
    csr: { type: "string", value: "<file>", description: "the CSR, PEM (from keyportal csr or openssl req)", required: true },
    kind: { type: "string", value: "<kind>", description: KINDS.join("|"), required: true },
    environment: { type: "string", value: "<env>", description: ENVIRONMENTS.join("|"), required: true },
    "organization-id": { type: "string", value: "<id>", description: "the organization the certificate is for (an MSP passes the participant's id)", required: true },
  },
  examples: ["keyportal submit --csr ~/keyportal-keys/acme-client.csr --kind MTLS_CLIENT --environment MTF --organization-id <org id>"],
  async run(ctx) {
    const file = need(ctx.values, "csr");
    const input = {
      organizationId: need(ctx.values, "organization-id"),
      kind: oneOf(need(ctx.values, "kind"), KINDS, "kind"),
      environment: oneOf(need(ctx.values, "environment"), ENVIRONMENTS, "environment"),
      pem: await readFileFor(file, "CSR file"),
    };
    const client = await ctx.connect();
    const { submitCsr } = await client.graphql<{
      submitCsr: { id: string; status: string; subject: string; kind: string; environment: string; ignoredExtensions: string[] };
    }>(`mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id status subject kind environment ignoredExtensions } }`, { input });
    // The profile decides the extensions: say which of the requested ones the certificate will not carry.
    const ignored = submitCsr.ignoredExtensions.map(nameOf);
    return {
      text: [
        `submitted ${submitCsr.id}: ${submitCsr.status} ${submitCsr.subject}`,
        ...(ignored.length > 0 ? [`ignored extensions (the profile does not grant them): ${ignored.join(", ")}`] : []),
        `next: ${shellCommand("status", "--csr", submitCsr.id)}  (or keyportal watch --types CSR_SIGNED,CSR_REJECTED)`,
      ].join("\n"),
      json: submitCsr,
    };
  },
};

interface CsrStatusView {
  id: string;
  status: string;
  kind: string;
  environment: string;
  subject: string;
  submittedAt: string;
  rejectionReason: string | null;
  certificate: { id: string; serialNumber: string; commonName: string; notAfter: string } | null;
}

interface CertificateView {
  id: string;
  status: string;
  kind: string;
  environment: string;
  subject: string;
  commonName: string;
  serialNumber: string;
  notAfter: string;
  daysUntilExpiry: number;
  revokedAt: string | null;
  revocationReason: string | null;
  renewedBy: { id: string } | null;
}

const CSR_FIELDS = "id status kind environment subject submittedAt rejectionReason certificate { id serialNumber commonName notAfter }";
const CERTIFICATE_FIELDS = "id status kind environment subject commonName serialNumber notAfter daysUntilExpiry revokedAt revocationReason renewedBy { id }";

function csrText(csr: CsrStatusView): string {
  const lines = [`CSR ${csr.id}: ${csr.status} ${csr.kind} ${csr.environment} ${csr.subject}`];
  if (csr.rejectionReason) lines.push(`rejected: ${csr.rejectionReason}`);
  if (csr.certificate) {
    lines.push(`certificate: ${csr.certificate.id} (serial ${csr.certificate.serialNumber}, valid until ${csr.certificate.notAfter})`);
    lines.push(`next: ${downloadCommandFor(csr.certificate)}`);
  }
  return lines.join("\n");
}

function certificateText(c: CertificateView): string {
  const lines = [
    `certificate ${c.id}: ${c.status} ${c.kind} ${c.environment} ${c.subject}`,
    `serial ${c.serialNumber}, valid until ${c.notAfter} (${c.daysUntilExpiry} days)`,
  ];
  if (c.revokedAt) lines.push(`revoked ${c.revokedAt}: ${c.revocationReason}`);
  if (c.renewedBy) lines.push(`renewed by ${c.renewedBy.id}`);
  else if (c.status === "ACTIVE" && c.daysUntilExpiry <= 120) lines.push(`next: ${shellCommand("renew", "--certificate", c.id)}`);
  return lines.join("\n");
}

export const statusCommand: Command = {
  name: "status",
  summary: "show a CSR or a certificate; without arguments, pending CSRs and certificates in force",
  remote: true,
  options: {
    csr: { type: "string", value: "<id>", description: "a CSR's status, and its certificate id once signed" },
    certificate: { type: "string", value: "<id>", description: "a certificate's status, serial, expiry and revocation" },
  },
  examples: ["keyportal status", "keyportal status --csr <csr id>", "keyportal status --certificate <certificate id> --json"],
  async run(ctx) {
    const client = await ctx.connect();
    if (ctx.values.csr !== undefined) {
      const id = idOption(ctx.values, "csr");
      const { certificateSigningRequest: csr } = await client.graphql<{ certificateSigningRequest: CsrStatusView | null }>(
        `query($id: ID!) { certificateSigningRequest(id: $id) { ${CSR_FIELDS} } }`,
        { id },
      );
      if (!csr) throw new CliError(`CSR ${id} not found (or not visible with this token)`, EXIT.NOT_FOUND);
      return { text: csrText(csr), json: csr };
    }
    if (ctx.values.certificate !== undefined) {
      const id = idOption(ctx.values, "certificate");
      const { certificate } = await client.graphql<{ certificate: CertificateView | null }>(`query($id: ID!) { certificate(id: $id) { ${CERTIFICATE_FIELDS} } }`, { id });
      if (!certificate) throw new CliError(`certificate ${id} not found (or not visible with this token)`, EXIT.NOT_FOUND);
      return { text: certificateText(certificate), json: certificate };
    }
    const data = await client.graphql<{
      me: { role: string; organization: { name: string } };
      certificateSigningRequests: { totalCount: number; nodes: CsrStatusView[] };
      certificates: { totalCount: number; nodes: CertificateView[] };
    }>(
      `{ me { role organization { name } }
         certificateSigningRequests(filter: { status: PENDING }, first: 50) { totalCount nodes { ${CSR_FIELDS} } }
         certificates(filter: { status: ACTIVE }, first: 50) { totalCount nodes { ${CERTIFICATE_FIELDS} } } }`,
    );
    const pending = data.certificateSigningRequests;
    const active = data.certificates;
    const lines = [`${data.me.organization.name} (${data.me.role})`, `pending CSRs: ${pending.totalCount}`];
    for (const c of pending.nodes) lines.push(`  ${c.id}  ${c.kind} ${c.environment}  ${c.subject}  submitted ${c.submittedAt}`);
    lines.push(`active certificates: ${active.totalCount}`);
    for (const c of [...active.nodes].sort((a, b) => a.daysUntilExpiry - b.daysUntilExpiry)) {
      lines.push(`  ${c.id}  ${c.kind} ${c.environment}  ${c.commonName}  serial ${c.serialNumber}  ${c.daysUntilExpiry} days left`);
    }
    if (pending.totalCount > pending.nodes.length || active.totalCount > active.nodes.length) lines.push("(first 50 of each shown; use --json or GraphQL for the rest)");
    return { text: lines.join("\n"), json: { viewer: data.me, pendingCsrs: pending, activeCertificates: active } };
  },
};

export const cancelCommand: Command = {
  name: "cancel",
  summary: "withdraw a PENDING CSR of your organization",
  remote: true,
  options: { csr: { type: "string", value: "<id>", description: "the CSR to cancel", required: true } },
  examples: ["keyportal cancel --csr <csr id>"],
  async run(ctx) {
    const id = idOption(ctx.values, "csr");
    const { cancelCsr } = await (await ctx.connect()).graphql<{ cancelCsr: { id: string; status: string; subject: string } }>(
      `mutation($id: ID!) { cancelCsr(csrId: $id) { id status subject } }`,
      { id },
    );
    return { text: `CSR ${cancelCsr.id}: ${cancelCsr.status} ${cancelCsr.subject}`, json: cancelCsr };
  },
};

export const whoamiCommand: Command = {
  name: "whoami",
  summary: "show whose token this is: officer, role and organization",
  remote: true,
  options: {},
  examples: ["keyportal whoami"],
  async run(ctx) {
    const { me } = await (await ctx.connect()).graphql<{ me: { role: string; officer: { id: string; name: string; email: string }; organization: { id: string; name: string; kind: string } } }>(
      `{ me { role officer { id name email } organization { id name kind } } }`,
    );
    return { text: `${me.officer.name} <${me.officer.email}>, ${me.role} of ${me.organization.name} (${me.organization.kind} ${me.organization.id})`, json: me };
  },
};
