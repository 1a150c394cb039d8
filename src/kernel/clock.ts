import { DAY_MS } from "./time.js";

/** Domain time comes only from a Clock, so tests can move it. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = {
  now: () => new Date(),
};

/** A clock that stands still until told to move; used by tests and benchmarks. */
export class ManualClock implements Clock {
  private ms: number;
  constructor(start: Date | string = "2026-01-01T00:00:00.000Z") {
    this.ms = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.ms);
  }
  set(at: Date | string): void {
    this.ms = new Date(at).getTime();
  }
  advanceDays(days: number): void {
    this.ms += days * DAY_MS;
  }
  advanceMs(ms: number): void {
    this.ms += ms;
  }
}
