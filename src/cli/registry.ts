/** Every CLI command, in the order `keyportal help` lists them. A new command is a module under commands/ and one line here. */
import type { Command } from "./command.js";
import { caCommand, compromiseCommand, downloadCommand, revokeCommand } from "./commands/certificates.js";
import { delegationsApproveCommand, delegationsDeclineCommand, delegationsListCommand, delegationsRevokeCommand } from "./commands/delegations.js";
import { enrollCommand } from "./commands/enroll.js";
import { csrCommand, renewCommand } from "./commands/keys.js";
import { approveCommand, rejectCommand, signCommand } from "./commands/operator.js";
import { cancelCommand, statusCommand, submitCommand, whoamiCommand } from "./commands/requests.js";
import { watchCommand } from "./commands/watch.js";

export const COMMAND_GROUPS: Array<{ title: string; commands: Command[] }> = [
  { title: "officers", commands: [enrollCommand, csrCommand, submitCommand, statusCommand, downloadCommand, caCommand, renewCommand, revokeCommand, compromiseCommand, cancelCommand, watchCommand, whoamiCommand] },
  { title: "delegations (officers of the participant)", commands: [delegationsListCommand, delegationsApproveCommand, delegationsDeclineCommand, delegationsRevokeCommand] },
  { title: "KMS operators", commands: [signCommand, rejectCommand, approveCommand] },
];

export const COMMANDS: Command[] = COMMAND_GROUPS.flatMap((g) => g.commands);
