import type { Logger } from "pino";
import type { KmsService } from "./kms.service.js";

/**
 * Runs KmsService.scanExpiry every `intervalMs` on every instance; the
 * reminders' unique dedupe keys make concurrent scans send each one once.
 * Stands alone until the notifications' expiry scanner can call
 * KmsService.scanExpiry itself.
 */
export class KmsExpirySchedule {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly kms: KmsService,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.runOnce(), this.intervalMs);
    this.timer.unref();
  }

  /** One scan now, unless one is already running (then that one's completion). */
  runOnce(): Promise<void> {
    this.running ??= this.kms
      .scanExpiry()
      .then((emitted) => {
        if (emitted > 0) this.logger.info({ emitted }, "KMS certificate expiry reminders sent");
      })
      .catch((error: unknown) => this.logger.error({ err: error }, "KMS certificate expiry scan failed"))
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }
}
