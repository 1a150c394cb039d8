import { promises as fs } from "node:fs";
import path from "node:path";
import nodemailer from "nodemailer";

export interface OutgoingEmail {
  from: string;
  to: string;
  subject: string;
  text: string;
  /** RFC 5322 Message-ID, "<...@...>": the same for every attempt, so a receiver can spot a resend. */
  messageId: string;
}

/** Sends one email; throws when the message was not accepted. */
export interface Mailer {
  readonly kind: "smtp" | "file";
  send(email: OutgoingEmail): Promise<{ messageId: string }>;
  close(): void;
}

/** SMTP_URL: smtp://user:pass@host:587 or smtps://host:465 (nodemailer's URL form). */
export class SmtpMailer implements Mailer {
  readonly kind = "smtp";
  private readonly transport;

  constructor(url: string) {
    // A small pool of reused connections (a KMS publication mails every participant); short timeouts: a dead
    // server is a failed attempt to retry later, not a stuck worker.
    this.transport = nodemailer.createTransport({
      pool: true,
      maxConnections: 4,
      url,
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 30_000,
    });
  }

  async send(email: OutgoingEmail): Promise<{ messageId: string }> {
    const info = await this.transport.sendMail(email);
    return { messageId: info.messageId ?? email.messageId };
  }

  close(): void {
    this.transport.close();
  }
}

/**
 * With no SMTP_URL: each message is written as an .eml file under
 * `<data dir>/mail/`, named after its Message-ID, so a new user sees what
 * would have been sent (and a second attempt overwrites, never duplicates).
 */
export class FileMailer implements Mailer {
  readonly kind = "file";
  private readonly transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });

  constructor(readonly directory: string) {}

  async send(email: OutgoingEmail): Promise<{ messageId: string }> {
    const info = await this.transport.sendMail(email);
    const message = info.message;
    if (!Buffer.isBuffer(message)) throw new Error("the stream transport did not return a buffer");
    await fs.mkdir(this.directory, { recursive: true, mode: 0o700 });
    const name = email.messageId.replace(/^<|>$/g, "").replace(/[^A-Za-z0-9._-]/g, "_");
    const file = path.join(this.directory, `${name}.eml`);
    const partial = `${file}.partial`;
    await fs.writeFile(partial, message, { mode: 0o600 });
    await fs.rename(partial, file);
    return { messageId: email.messageId };
  }

  close(): void {
    this.transport.close();
  }
}

export function createMailer(opts: { smtpUrl?: string; dataDir: string }): Mailer {
  return opts.smtpUrl ? new SmtpMailer(opts.smtpUrl) : new FileMailer(path.join(opts.dataDir, "mail"));
}
