import { performance } from "node:perf_hooks";

export interface BenchResult {
  name: string;
  count: number;
  totalMs: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs `op` count times one after the other (after a short warm-up) and reports rate and latency percentiles. */
export async function measure(name: string, count: number, op: () => Promise<unknown>): Promise<BenchResult> {
  for (let i = 0; i < Math.min(20, count); i++) await op();
  const samples: number[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await op();
    samples.push(performance.now() - t);
  }
  const totalMs = performance.now() - start;
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!;
  return { name, count, totalMs, perSecond: (count / totalMs) * 1000, p50Ms: at(0.5), p99Ms: at(0.99) };
}

export function report(title: string, results: BenchResult[], baseline?: BenchResult): void {
  console.log(`\n## ${title}`);
  for (const r of results) {
    const ratio = baseline && r !== baseline ? `  (${(baseline.perSecond / r.perSecond).toFixed(1)}x the time of "${baseline.name}")` : "";
    console.log(
      `${r.name}: ${r.perSecond.toFixed(0)}/s over ${r.count}, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms${ratio}`,
    );
  }
}
