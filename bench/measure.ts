import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

// A full collection before each measurement, so that one measurement's garbage
// (the library issuance path leaves a lot) is not collected during the next
// one's. `npm run bench` starts node without --expose-gc; this is the same switch.
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

export interface BenchResult {
  name: string;
  count: number;
  /** Operations in flight at once (absent or 1: one after the other). */
  concurrency?: number;
  totalMs: number;
  perSecond: number;
  /** Latency of one operation, queueing behind the others included when concurrency > 1. */
  p50Ms: number;
  p99Ms: number;
  /** CPU time the server process spent per operation (warm-up included), where the bench runs the server in a process of its own. */
  serverCpuMs?: number;
}

/** Runs `op` count times one after the other (after a warm-up) and reports rate and latency percentiles. */
export function measure(name: string, count: number, op: () => Promise<unknown>, warmup = Math.min(20, count)): Promise<BenchResult> {
  return measureConcurrent(name, count, 1, op, warmup);
}

/**
 * Runs `op` count times with `concurrency` operations in flight (each worker
 * starts its next one when its last one settles), after `warmup` runs that
 * give the JIT and the thread pool a chance to settle. Reports overall rate
 * and per-operation latency percentiles.
 */
export async function measureConcurrent(
  name: string,
  count: number,
  concurrency: number,
  op: () => Promise<unknown>,
  warmup = Math.min(20, count),
): Promise<BenchResult> {
  collectGarbage();
  let warm = warmup;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, Math.max(warmup, 1)) }, async () => {
      while (warm-- > 0) await op();
    }),
  );
  const samples: number[] = [];
  let left = count;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        const t = performance.now();
        await op();
        samples.push(performance.now() - t);
      }
    }),
  );
  const totalMs = performance.now() - start;
  samples.sort((a, b) => a - b);
  const at = (q: number) => percentile(samples, q);
  return { name, count, concurrency, totalMs, perSecond: (count / totalMs) * 1000, p50Ms: at(0.5), p99Ms: at(0.99) };
}

/**
 * The q-quantile of samples sorted ascending, by nearest rank: the smallest
 * sample with at least q of them at or below it (of 100 samples, p99 is the
 * 99th and the largest is p100). NaN when there are none.
 */
export function percentile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

export function report(title: string, results: BenchResult[], baseline?: BenchResult): void {
  console.log(`\n## ${title}`);
  for (const r of results) {
    const ratio = baseline && r !== baseline ? `  (${(baseline.perSecond / r.perSecond).toFixed(1)}x the time of "${baseline.name}")` : "";
    const inFlight = (r.concurrency ?? 1) > 1 ? `, ${r.concurrency} in flight` : "";
    console.log(
      `${r.name}: ${r.perSecond.toFixed(0)}/s over ${r.count}${inFlight}, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms${ratio}`,
    );
  }
}

/**
 * The result with the median rate of several rounds of the same measurement.
 * Rounds of different operations are interleaved by the caller, so a burst of
 * load from elsewhere on the machine lands on one round of each rather than
 * on all rounds of one.
 */
export function medianRound(rounds: readonly BenchResult[]): BenchResult {
  const sorted = [...rounds].sort((a, b) => a.perSecond - b.perSecond);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return { ...median, name: rounds.length > 1 ? `${median.name} [median of ${rounds.length} rounds]` : median.name };
}
