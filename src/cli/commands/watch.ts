/** watch: follow notifications live, reconnecting and resuming after its last cursor. */
import { NotificationType } from "../../kernel/domain.js";
import { CliError, EXIT, type WatchedNotification, watchNotifications } from "../client.js";
import { type Command, listOf, optionalString, shellCommand } from "../command.js";
import { downloadCommandFor } from "./requests.js";

/** The command to run next for a notification, if there is one. */
export function nextCommandOf(n: WatchedNotification, baseUrl: string): string | null {
  const c = n.certificate;
  if (c && n.type === "CSR_SIGNED") return `${downloadCommandFor(c)}  (or GET ${new URL(`/certificates/${c.id}.pem`, baseUrl)})`;
  if (c && (n.type === "CERTIFICATE_EXPIRING" || n.type === "CERTIFICATE_EXPIRED")) return shellCommand("renew", "--certificate", c.id);
  if (n.delegation && n.type === "DELEGATION_REQUESTED") return shellCommand("delegations", "approve", "--delegation", n.delegation.id);
  return null;
}

/** One notification as a line, and the next command for it where there is one. */
export function watchLine(n: WatchedNotification, baseUrl: string): string {
  const parts = [n.id, n.occurredAt, n.type + (n.daysUntilExpiry != null ? ` (${n.daysUntilExpiry} days)` : ""), n.message];
  const c = n.certificate;
  if (c) parts.push(`certificate=${c.id} serial=${c.serialNumber}`);
  else if (n.certificateSigningRequest) parts.push(`csr=${n.certificateSigningRequest.id}`);
  else if (n.delegation) parts.push(`delegation=${n.delegation.id}`);
  const next = nextCommandOf(n, baseUrl);
  return parts.join("\t") + (next ? `\n  next: ${next}` : "");
}

export const watchCommand: Command = {
  name: "watch",
  summary: "follow notifications live until Ctrl-C, reconnecting (with backoff) and resuming after the last one printed",
  details:
    "Each line: cursor, time, type, message, and the certificate id and serial where there is one, with the next command.\n" +
    "Restart it with --after <last cursor printed> to miss nothing in between.",
  remote: true,
  options: {
    after: { type: "string", value: "<cursor>", description: "first replay every notification after this cursor (the first column)" },
    types: { type: "string", value: "<list>", description: `only these, comma-separated: ${Object.values(NotificationType).join(",")}` },
  },
  examples: ["keyportal watch --types CSR_SIGNED,CERTIFICATE_EXPIRING", "keyportal watch --after 41 --json >> notifications.jsonl"],
  async run(ctx) {
    const after = optionalString(ctx.values, "after");
    if (after !== undefined && !/^\d{1,18}$/.test(after)) throw new CliError("--after must be a notification cursor (the first column watch prints)", EXIT.USAGE);
    const rawTypes = optionalString(ctx.values, "types");
    const types = rawTypes ? listOf(rawTypes, Object.values(NotificationType), "types") : undefined;
    const client = await ctx.connect();
    const backoffMs = Number(ctx.env.KEYPORTAL_WATCH_BACKOFF_MS) || 1000;
    await watchNotifications(
      client,
      await ctx.token(),
      { after, types, backoff: { initialMs: backoffMs, maxMs: 30 * backoffMs }, onStatus: ctx.info },
      (n) => ctx.out(ctx.json ? JSON.stringify({ ...n, next: nextCommandOf(n, client.baseUrl) }) : watchLine(n, client.baseUrl)),
      ctx.signal,
    );
  },
};
