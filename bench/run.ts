/**
 * `npm run bench`: speed figures, measured side by side in one run on this
 * machine. Not tests: nothing here fails on a number.
 */
import "reflect-metadata";
import { issuanceBench } from "./issuance.js";
import { report } from "./measure.js";

const scale = Number(process.env.BENCH_SCALE ?? "1");
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? "3"));

for (const section of await issuanceBench(Math.round(1000 * scale), rounds)) {
  report(section.title, section.results, section.baseline);
  for (const note of section.notes) console.log(`  ${note}`);
}
