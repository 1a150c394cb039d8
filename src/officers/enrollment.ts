import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Clock } from "../kernel/clock.js";
import { rateLimited } from "../kernel/errors.js";
import type { Mailer } from "../notifications/mailer.js";
import { describeSendError } from "../notifications/delivery-worker.js";

/** 160 bits of randomness, URL-safe, with a prefix that tells it apart from an API token. */
export function newEnrollmentCode(): string {
  return `kpe_${randomBytes(20).toString("base64url")}`;
}

export function hashEnrollmentCode(code: string): string {
  return createHash("sha256").update(code.trim(), "utf8").digest("hex");
}

export interface EnrollmentLetter {
  to: string;
  officerName: string;
  organizationName: string;
  code: string;
  expiresAt: Date;
}

const RETRY_DELAYS_MS = [2_000, 10_000, 60_000];

/**
 * The one email an enrollment code appears in. It is sent from memory after
 * the commit that stored the code's hash, never written to the database (the
 * notification outbox keeps email bodies until they are sent, and this one
 * must not be kept anywhere). A few retries on failure; after that the
 * failure is logged (without the code) and an operator or fellow officer
 * sends a fresh code with resendEnrollment.
 */
export class EnrollmentMailer {
  private readonly messageIdDomain: string;
  private readonly pending = new Set<NodeJS.Timeout>();

  constructor(
    private readonly mailer: Mailer,
    private readonly from: string,
    private readonly publicUrl: string,
    private readonly logger: Logger,
  ) {
    this.messageIdDomain = /@([^>\s]+)>?$/.exec(from)?.[1] ?? "keyportal.invalid";
  }

  send(letter: EnrollmentLetter, officerId: string): void {
    const messageId = `<enrollment-${randomUUID()}@${this.messageIdDomain}>`;
    const text = [
      `Hello ${letter.officerName},`,
      "",
      `you have been registered as a security officer of ${letter.organizationName} in KeyPortal.`,
      "Exchange this one-time code for your first API token (enrollOfficer in KeyPortal, or `keyportal enroll --code <code>`):",
      "",
      `Enrollment code: ${letter.code}`,
      "",
      `The code works once, until ${letter.expiresAt.toISOString()}. Nobody else has it: do not forward it.`,
      "If you did not expect this email, tell the KMS team and do not use the code.",
      "",
      `KeyPortal: ${this.publicUrl}/graphql`,
      "",
    ].join("\n");
    const email = { from: this.from, to: letter.to, subject: `[KeyPortal] Your enrollment code for ${letter.organizationName}`.replace(/[\r\n\t]+/g, " ").slice(0, 300), text, messageId };
    const attempt = (n: number): void => {
      this.mailer.send(email).then(
        () => this.logger.info({ officerId }, "enrollment code sent"),
        (error: unknown) => {
          const delay = RETRY_DELAYS_MS[n];
          this.logger.warn({ officerId, attempt: n + 1, lastError: describeSendError(error), giveUp: delay === undefined }, "enrollment email failed");
          if (delay === undefined) return;
          const timer = setTimeout(() => {
            this.pending.delete(timer);
            attempt(n + 1);
          }, delay);
          timer.unref();
          this.pending.add(timer);
        },
      );
    };
    attempt(0);
  }

  close(): void {
    for (const timer of this.pending) clearTimeout(timer);
    this.pending.clear();
  }
}

/**
 * Repeated failed enrollment attempts from one client address are refused
 * for a while (RATE_LIMITED with retryAfterSeconds): a code has 160 bits, so
 * this is about noise and log flooding rather than guessing. In memory, per
 * instance, bounded. Kept behind `attempt` so that a general quota module
 * can take its place.
 */
export class EnrollmentThrottle {
  private readonly failures = new Map<string, { count: number; windowStart: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly limits = { maxFailures: 5, windowMs: 15 * 60_000 },
  ) {}

  /** Runs one enrollment attempt for `address`, counting it when it fails with `failureReason`. */
  async attempt<T>(address: string, failureReason: string, work: () => Promise<T>): Promise<T> {
    const now = this.clock.now().getTime();
    const entry = this.failures.get(address);
    if (entry && now - entry.windowStart >= this.limits.windowMs) this.failures.delete(address);
    const current = this.failures.get(address);
    if (current && current.count >= this.limits.maxFailures) {
      const retryAfterSeconds = Math.max(1, Math.ceil((current.windowStart + this.limits.windowMs - now) / 1000));
      throw rateLimited("TOO_MANY_ENROLLMENT_ATTEMPTS", `too many failed enrollment attempts; try again in ${retryAfterSeconds} s`, retryAfterSeconds);
    }
    try {
      return await work();
    } catch (error) {
      if ((error as { reason?: unknown }).reason === failureReason) {
        if (this.failures.size >= 10_000) this.failures.clear();
        const e = this.failures.get(address) ?? { count: 0, windowStart: now };
        e.count += 1;
        this.failures.set(address, e);
      }
      throw error;
    }
  }
}
