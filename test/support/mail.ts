/** The mail a test server sends: the real mailer (file sink or SMTP), recording what it accepted, and the enrollment codes in it. */
import type { Config } from "../../src/config.js";
import { createMailer, type Mailer, type OutgoingEmail } from "../../src/notifications/mailer.js";

/** The real mailer of the config, recording every email it accepted (oldest first) so tests can read what went out. */
export function recordingMailer(config: Pick<Config, "smtpUrl" | "dataDir">): { mailer: Mailer; sentMail: OutgoingEmail[] } {
  const sentMail: OutgoingEmail[] = [];
  const realMailer = createMailer({ smtpUrl: config.smtpUrl, dataDir: config.dataDir });
  const mailer: Mailer = {
    kind: realMailer.kind,
    async send(email) {
      const result = await realMailer.send(email);
      sentMail.push(email);
      return result;
    },
    close: () => realMailer.close(),
  };
  return { mailer, sentMail };
}

/**
 * The enrollment code in the newest enrollment email to `email`; waits up to
 * 10 s for more than `after` (default 0) enrollment emails to have gone to
 * the address (the email is sent after commit; pass the count seen before a
 * resend to get the new code).
 */
export async function enrollmentCodeIn(sentMail: readonly OutgoingEmail[], email: string, opts?: { after?: number }): Promise<string> {
  const wanted = email.trim().toLowerCase();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const codes = sentMail
      .filter((m) => m.to.toLowerCase() === wanted)
      .map((m) => /^Enrollment code: (\S+)$/m.exec(m.text)?.[1])
      .filter((c): c is string => Boolean(c));
    if (codes.length > (opts?.after ?? 0)) return codes[codes.length - 1]!;
    if (Date.now() > deadline) throw new Error(`no enrollment email to ${email} arrived`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
