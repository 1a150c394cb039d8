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
import { scaleBench } from "./scale.js";
import { peersBench, reportPeers } from "./peers.js";

const scale = Number(process.env.BENCH_SCALE ?? "1");
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? "3"));

function reportFanout(fanout: Awaited<ReturnType<typeof fanoutBench>>): void {
  console.log(`registerOfficer alone, nobody subscribed: p50 ${fanout.baselineMs.toFixed(1)} ms`);
  console.log("| server | clients | received | errors | failed | dropped | publish request | receipt p50 | receipt p99 | max | server RSS |");
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  for (const r of fanout.results) {
    console.log(
      `| ${r.server} | ${r.requested} | ${r.subscribers} | ${r.errored} | ${r.failed} | ${r.dropped} | ${r.publishMs.toFixed(1)} ms | ${r.p50Ms.toFixed(1)} ms | ${r.p99Ms.toFixed(1)} ms | ${r.maxMs.toFixed(1)} ms | ${r.serverRssMb.toFixed(0)} MB |`,
    );
  }
  for (const kp of fanout.results.filter((r) => r.server === "KeyPortal")) {
    const bare = fanout.results.find((r) => r.server !== "KeyPortal" && r.requested === kp.requested);
    if (bare) console.log(`  ${kp.requested} clients: KeyPortal p99 ${(kp.p99Ms / bare.p99Ms).toFixed(2)}x bare graphql-ws, RSS ${(kp.serverRssMb / bare.serverRssMb).toFixed(2)}x`);
  }
}

if (process.env.BENCH_ONLY === "peers") {
  // KeyPortal beside cfssl serve, one wrk for both (bench/peers.ts).
  reportPeers(await peersBench());
  process.exit(0);
}

if (scale >= 10_000) {
  // Scale mode: BENCH_SCALE is the number of certificates (e.g. 1000000).
  const dbs = (process.env.BENCH_DB ?? "sqlite,postgres").split(",") as Array<"sqlite" | "postgres">;
  const runs = Math.max(10, Number(process.env.BENCH_RUNS ?? "100"));
  const due = process.env.BENCH_DUE === undefined ? undefined : Number(process.env.BENCH_DUE);
  if (due !== undefined && !(Number.isInteger(due) && due > 0)) throw new Error(`BENCH_DUE must be a positive whole number, not ${process.env.BENCH_DUE}`);
  for (const db of dbs.filter((d) => d === "sqlite" || d === "postgres")) {
    // Each row is printed as it is measured: a long run interrupted still leaves what it measured.
    const r = await scaleBench(db, scale, runs, {
      built: (certificates, seconds) => {
        console.log(`\n## Read path on ${db}: ${certificates} certificates (built in ${seconds.toFixed(0)} s); HTTP, one request at a time, ${runs} runs each`);
        console.log("| measurement | p50 | p99 | server CPU per request |");
        console.log("|---|---|---|---|");
      },
      read: (m) => console.log(`| ${m.name} | ${m.p50Ms.toFixed(2)} ms | ${m.p99Ms.toFixed(2)} ms | ${m.serverCpuMs === undefined ? "" : `${m.serverCpuMs.toFixed(2)} ms`} |`),
      scan: (s) => console.log(`| ${s.name} | ${s.ms.toFixed(0)} ms${s.emitted === undefined ? "" : ` (${s.emitted} notifications)`} | | |`),
    }, due);
    console.log(`${r.certificates} certificates at the end; server RSS at the end of its runs: ${r.serverRssMb.toFixed(0)} MB`);
  }
  const subscribers = (process.env.BENCH_SUBSCRIBERS ?? "10000").split(",").map(Number).filter((n) => n > 0);
  if (subscribers.length === 0) process.exit(0);
  console.log("\n## Subscription fan-out: KeyPortal against a bare graphql-ws server (each in its own process, clients in this one)");
  reportFanout(await fanoutBench(subscribers));
  process.exit(0);
}

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

console.log("\n## Subscription fan-out: KeyPortal against a bare graphql-ws server (each in its own process, clients in this one)");
reportFanout(await fanoutBench((process.env.BENCH_SUBSCRIBERS ?? "100,1000,5000").split(",").map(Number)));

const amplification = await amplificationBench(Math.round(300 * scale));
report("Query amplification (compiled server, SQLite, default limits)", amplification.results, amplification.results[0]);
for (const note of amplification.notes) console.log(`  ${note}`);
