/** delegations list|approve|decline|revoke: a participant's answer to the KMS's delegation requests. */
import { DelegationStatus } from "../../kernel/domain.js";
import { type Command, idOption, oneOf, optionalString } from "../command.js";

interface DelegationView {
  id: string;
  status: string;
  environment: string;
  kinds: string[];
  participant: { id: string; name: string };
  msp: { id: string; name: string };
  requestedAt: string;
  note: string | null;
}

const FIELDS = "id status environment kinds participant { id name } msp { id name } requestedAt note";
const line = (d: DelegationView) => `${d.id}  ${d.status}  ${d.participant.name} -> ${d.msp.name}  ${d.kinds.join(",")} ${d.environment}${d.note ? `  (${d.note})` : ""}`;

export const delegationsListCommand: Command = {
  name: "delegations list",
  summary: "list delegations your organization granted or received (operators: all)",
  remote: true,
  options: { status: { type: "string", value: "<status>", description: Object.values(DelegationStatus).join("|") } },
  examples: ["keyportal delegations list --status PENDING_APPROVAL"],
  async run(ctx) {
    const raw = optionalString(ctx.values, "status");
    const status = raw ? oneOf(raw, Object.values(DelegationStatus), "status") : null;
    const { delegations } = await (await ctx.connect()).graphql<{ delegations: DelegationView[] }>(
      `query($status: DelegationStatus) { delegations(status: $status) { ${FIELDS} } }`,
      { status },
    );
    return { text: delegations.length ? delegations.map(line).join("\n") : "no delegations", json: delegations };
  },
};

function decision(name: "approve" | "decline" | "revoke", mutation: string, summary: string, extra: Command["options"] = {}): Command {
  return {
    name: `delegations ${name}`,
    summary,
    remote: true,
    options: { delegation: { type: "string", value: "<id>", description: "the delegation (ids from delegations list)", required: true }, ...extra },
    examples: [`keyportal delegations ${name} --delegation <delegation id>${name === "decline" ? ' --reason "not our MSP"' : ""}`],
    async run(ctx) {
      const id = idOption(ctx.values, "delegation");
      const reason = optionalString(ctx.values, "reason");
      const args = name === "decline" ? "(delegationId: $id, reason: $reason)" : "(delegationId: $id)";
      const declared = name === "decline" ? "($id: ID!, $reason: String)" : "($id: ID!)";
      const data = await (await ctx.connect()).graphql<Record<string, DelegationView>>(`mutation${declared} { ${mutation}${args} { ${FIELDS} } }`, {
        id,
        ...(name === "decline" ? { reason: reason ?? null } : {}),
      });
      const d = data[mutation]!;
      return { text: line(d), json: d };
    },
  };
}

export const delegationsApproveCommand = decision("approve", "approveDelegation", "confirm a PENDING_APPROVAL delegation: the MSP may then act for you");
export const delegationsDeclineCommand = decision("decline", "declineDelegation", "decline a PENDING_APPROVAL delegation", {
  reason: { type: "string", value: "<text>", description: "why, shown to the KMS" },
});
export const delegationsRevokeCommand = decision("revoke", "revokeDelegation", "end a delegation: the MSP loses access at once");
