/** enroll: an officer's first API token, for the one-time code from their enrollment email. */
import os from "node:os";
import { type Command, need, optionalString } from "../command.js";

export const enrollCommand: Command = {
  name: "enroll",
  summary: "exchange the one-time code from your enrollment email for your first API token (no token needed)",
  details:
    "Prints the token once and stores it nowhere. Keep it in a file of mode 0600, e.g.\n" +
    "  umask 077; mkdir -p ~/.config/keyportal; keyportal enroll --code <code> | tail -1 > ~/.config/keyportal/token\n" +
    "which the other commands read by default.",
  remote: true,
  options: {
    code: { type: "string", value: "<code>", description: "the code from the line 'Enrollment code: ...' of the email", required: true },
    label: { type: "string", value: "<name>", description: "a name for the token, e.g. this machine (default: its host name)" },
  },
  examples: ["keyportal enroll --code kpe_... --label laptop"],
  async run(ctx) {
    const code = need(ctx.values, "code");
    const label = optionalString(ctx.values, "label") ?? (os.hostname().trim() || "keyportal cli");
    // No token: the code is the proof (and a token in the environment is not sent).
    const client = await ctx.connectAnonymously();
    const { enrollOfficer: grant } = await client.graphql<{
      enrollOfficer: { id: string; token: string; label: string; expiresAt: string | null; officer: { id: string; name: string; email: string } };
    }>(`mutation($code: String!, $label: String!) { enrollOfficer(code: $code, label: $label) { id token label expiresAt officer { id name email } } }`, { code, label });
    return {
      text: `enrolled ${grant.officer.name} <${grant.officer.email}>; your API token (shown once, stored nowhere):\n${grant.token}`,
      json: grant,
    };
  },
};
