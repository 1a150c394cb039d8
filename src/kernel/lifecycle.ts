/**
 * Where a long-lived part (the app, a worker, the dispatcher) is in its life.
 * One state instead of started/stopped flags, so "stopped before it started"
 * or "started twice" cannot be told two ways.
 */
export type Lifecycle = "created" | "starting" | "running" | "stopping" | "stopped";

/** A part that starts at most once: the error for a second start or a start after stop. */
export function cannotStart(what: string, state: Lifecycle): Error {
  return new Error(`${what} cannot start: it is ${state}`);
}
