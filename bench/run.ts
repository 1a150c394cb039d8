/**
 * `npm run bench`: speed figures, measured side by side in one run on this
 * machine. Not tests: nothing here fails on a number.
 */
import "reflect-metadata";
import { issuanceBench } from "./issuance.js";
import { report } from "./measure.js";

const scale = Number(process.env.BENCH_SCALE ?? "1");

const issuance = await issuanceBench(Math.round(300 * scale));
report("Issuance", issuance, issuance[0]);
