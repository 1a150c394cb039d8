/**
 * `npm run bench`: speed figures, measured side by side in one run on this
 * machine. Not tests: nothing here fails on a number.
 */
import "reflect-metadata";
import { dashboardBench } from "./dashboard.js";
import { expiryBench } from "./expiry.js";
import { fanoutBench } from "./fanout.js";
import { issuanceBench } from "./issuance.js";
import { workflowBench } from "./workflow.js";
import { amplificationBench } from "./amplification.js";
import { report } from "./measure.js";

const scale = Number(process.env.BENCH_SCALE ?? "1");
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? "3"));

for (const section of await issuanceBench(Math.round(1000 * scale), rounds)) {
  report(section.title, section.results, section.baseline);
  for (const note of section.notes) console.log(`  ${note}`);
}

const workflow = await workflowBench(Math.round(200 * scale));
report("Workflow over HTTP (SQLite): submit and sign", workflow, workflow[0]);

const dashboard = await dashboardBench(Math.round(5_000 * scale), Math.round(100 * scale));
report("Dashboard (HTTP, SQLite)", dashboard, dashboard[0]);

console.log("\n## Expiry scan (SQLite): cost follows what is due, not the table");
const expiry = await expiryBench(scale);
for (const c of expiry) {
  console.log(`${c.due} due in ${c.tableSize} certificates: ${c.scanMs.toFixed(0)} ms (${c.emitted} reminders, ${(c.scanMs / Math.max(1, c.emitted)).toFixed(2)} ms each)`);
}
console.log(`  same due, 10x the table: ${(expiry[1]!.scanMs / expiry[0]!.scanMs).toFixed(2)}x the time; 10x due, same table: ${(expiry[2]!.scanMs / expiry[1]!.scanMs).toFixed(2)}x the time`);

console.log("\n## Subscription fan-out (compiled server in a child process, clients here)");
const counts = (process.env.BENCH_SUBSCRIBERS ?? "100,1000,5000").split(",").map(Number);
const fanout = await fanoutBench(counts);
console.log(`registerOfficer alone, nobody subscribed: p50 ${fanout.baselineMs.toFixed(1)} ms`);
for (const r of fanout.results) {
  console.log(
    `${r.subscribers} subscribers: mutation ${r.mutationMs.toFixed(1)} ms; receipt after mutation start p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, max ${r.maxMs.toFixed(1)} ms; server RSS ${r.serverRssMb.toFixed(0)} MB`,
  );
}

const amplification = await amplificationBench(Math.round(300 * scale));
report("Query amplification (compiled server, SQLite, default limits)", amplification.results, amplification.results[0]);
for (const note of amplification.notes) console.log(`  ${note}`);
