import type { Logger } from "pino";
import { DomainError } from "./kernel/errors.js";

/** A background round that ran past its deadline; its loop goes on without it. */
export class WorkerStalledError extends Error {
  override readonly name = "WorkerStalledError";
}

export type WorkerState = "ok" | "failing" | "stalled";

/** At most one log line per this many ms for a repeating failure. */
export const REPEAT_LOG_MS = 60_000;

/**
 * Health of one background loop (the dispatcher's pump, the mail worker,
 * the expiry scanner). Each round runs under a deadline: past it the round
 * is abandoned (its caller's loop can start the next one), the loop is
 * "stalled" (readiness fails) and one line is logged; the first round that
 * completes again logs the recovery. Failing rounds are logged once and then
 * at most once a minute, not once per round.
 */
export class WorkerHealth {
  private stalledSince: number | null = null;
  private failingSince: number | null = null;
  private lastFailureLog = 0;
  private failures = 0;

  constructor(
    readonly name: string,
    private readonly logger: Logger,
    readonly deadlineMs: number,
  ) {}

  get state(): WorkerState {
    if (this.stalledSince !== null) return "stalled";
    return this.failingSince !== null ? "failing" : "ok";
  }

  /** Runs one round; rejects with WorkerStalledError once deadlineMs has passed without it settling. */
  async round<T>(work: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const stall = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (this.stalledSince === null) {
          this.stalledSince = performance.now();
          this.logger.error({ worker: this.name, deadlineMs: this.deadlineMs }, `${this.name} stalled: a round ran past its deadline; restarting its loop`);
        }
        reject(new WorkerStalledError(`${this.name} round ran past ${this.deadlineMs} ms`));
      }, this.deadlineMs);
      timer.unref();
    });
    const running = work();
    running.catch(() => undefined); // an abandoned round's late failure is not unhandled
    try {
      const result = await Promise.race([running, stall]);
      this.succeeded();
      return result;
    } catch (error) {
      // A DomainError is an answer (a busy lease), not a failing loop.
      if (!(error instanceof WorkerStalledError) && !(error instanceof DomainError)) this.failed(error);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  private succeeded(): void {
    if (this.stalledSince === null && this.failingSince === null) return;
    const since = this.stalledSince ?? this.failingSince!;
    this.logger.info(
      { worker: this.name, afterMs: Math.round(performance.now() - since), failedRounds: this.failures },
      `${this.name} recovered`,
    );
    this.stalledSince = null;
    this.failingSince = null;
    this.failures = 0;
  }

  private failed(error: unknown): void {
    const now = performance.now();
    this.failures += 1;
    if (this.failingSince === null) this.failingSince = now;
    if (this.failures === 1 || now - this.lastFailureLog >= REPEAT_LOG_MS) {
      this.lastFailureLog = now;
      // The message only: a driver error carries the statement and its parameters.
      this.logger.error({ err: { message: (error as Error)?.message }, worker: this.name, failedRounds: this.failures }, `${this.name} round failed; retrying`);
    }
  }
}

/** What this instance knows of itself without asking the database: for /readyz and /metrics. */
export interface RuntimeHealth {
  redis: "connected" | "unreachable" | "not configured";
  mutationsQueued: number;
  mutationQueueStuck: boolean;
  workers: Record<string, WorkerState>;
}

export interface ReadinessReport {
  ready: boolean;
  body: {
    status: "ready" | "degraded" | "not ready";
    database: "ok" | "unreachable" | "migrations pending";
    redis: RuntimeHealth["redis"];
    mutationQueue: "ok" | "stuck";
    workers: Record<string, WorkerState>;
  };
}

/**
 * GET /readyz, answered within timeoutMs whatever the database does. Not
 * ready (503): the database unreachable, not answering in time, or missing
 * migrations; the mutation queue or a background loop stuck past its
 * deadline. Degraded (still 200, since every write and every notification
 * goes on, through the database): Redis unreachable, so other instances'
 * events arrive by polling; a loop whose rounds fail (the database flapping).
 */
export async function checkReadiness(
  database: () => Promise<"ok" | "unreachable" | "migrations pending">,
  runtime: RuntimeHealth,
  timeoutMs: number,
): Promise<ReadinessReport> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"unreachable">((resolve) => {
    timer = setTimeout(() => resolve("unreachable"), timeoutMs);
    timer.unref();
  });
  const db = await Promise.race([database().catch(() => "unreachable" as const), late]);
  clearTimeout(timer);
  const states = Object.values(runtime.workers);
  const ready = db === "ok" && !runtime.mutationQueueStuck && !states.includes("stalled");
  const degraded = runtime.redis === "unreachable" || states.includes("failing");
  return {
    ready,
    body: {
      status: !ready ? "not ready" : degraded ? "degraded" : "ready",
      database: db,
      redis: runtime.redis,
      mutationQueue: runtime.mutationQueueStuck ? "stuck" : "ok",
      workers: runtime.workers,
    },
  };
}
