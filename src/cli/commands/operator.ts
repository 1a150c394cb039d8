/** sign, reject, approve: the KMS operator's decisions on a CSR. */
import { type Command, idOption, need, positiveInteger } from "../command.js";
import { downloadCommandFor } from "./requests.js";

export const signCommand: Command = {
  name: "sign",
  summary: "operators: issue the certificate for a PENDING CSR (under dual control, after another operator's approve)",
  remote: true,
  options: {
    csr: { type: "string", value: "<id>", description: "the CSR to sign", required: true },
    "validity-days": { type: "string", value: "<days>", description: "validity (default: the profile's default; at most its maximum)" },
  },
  examples: ["keyportal sign --csr <csr id>", "keyportal sign --csr <csr id> --validity-days 90 --json"],
  async run(ctx) {
    const input = { csrId: idOption(ctx.values, "csr"), validityDays: positiveInteger(ctx.values, "validity-days") ?? null };
    const { signCsr: c } = await (await ctx.connect()).graphql<{
      signCsr: { id: string; serialNumber: string; commonName: string; kind: string; environment: string; notAfter: string };
    }>(`mutation($input: SignCsrInput!) { signCsr(input: $input) { id serialNumber commonName kind environment notAfter } }`, { input });
    return {
      text: `signed: certificate ${c.id}, serial ${c.serialNumber}, ${c.kind} ${c.environment}, valid until ${c.notAfter}\nthe officers download it with: ${downloadCommandFor(c)}`,
      json: c,
    };
  },
};

export const rejectCommand: Command = {
  name: "reject",
  summary: "operators: reject a PENDING CSR with a reason the officers see",
  remote: true,
  options: {
    csr: { type: "string", value: "<id>", description: "the CSR to reject", required: true },
    reason: { type: "string", value: "<text>", description: "why, shown to the officers and in their email", required: true },
  },
  examples: ['keyportal reject --csr <csr id> --reason "CN must name the service host"'],
  async run(ctx) {
    const variables = { id: idOption(ctx.values, "csr"), reason: need(ctx.values, "reason") };
    const { rejectCsr: csr } = await (await ctx.connect()).graphql<{ rejectCsr: { id: string; status: string; rejectionReason: string } }>(
      `mutation($id: ID!, $reason: String!) { rejectCsr(csrId: $id, reason: $reason) { id status rejectionReason } }`,
      variables,
    );
    return { text: `CSR ${csr.id}: ${csr.status} (${csr.rejectionReason})`, json: csr };
  },
};

export const approveCommand: Command = {
  name: "approve",
  summary: "operators, under dual control: approve a PENDING CSR so that a different operator may sign it",
  remote: true,
  options: { csr: { type: "string", value: "<id>", description: "the CSR to approve", required: true } },
  examples: ["keyportal approve --csr <csr id>   (then another operator: keyportal sign --csr <csr id>)"],
  async run(ctx) {
    const id = idOption(ctx.values, "csr");
    const { approveCsr: csr } = await (await ctx.connect()).graphql<{ approveCsr: { id: string; status: string; environment: string; subject: string } }>(
      `mutation($id: ID!) { approveCsr(csrId: $id) { id status environment subject } }`,
      { id },
    );
    return { text: `CSR ${csr.id}: approved (${csr.status} ${csr.environment} ${csr.subject}); a different operator signs it: keyportal sign --csr ${csr.id}`, json: csr };
  },
};
