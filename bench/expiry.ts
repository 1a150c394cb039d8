/**
 * The expiry scan's cost grows with what is due, not with the table: the same
 * number due in a 10x larger table should take about the same time, and 10x
 * as many due about 10x as long. Each case on a fresh SQLite database.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createApp } from "../src/app.js";
import { ManualClock } from "../src/kernel/clock.js";
import { loadConfig } from "../src/config.js";
import { bulkCertificates } from "./fixtures.js";

export interface ExpiryCase {
  tableSize: number;
  due: number;
  scanMs: number;
  emitted: number;
}

async function oneCase(tableSize: number, due: number): Promise<ExpiryCase> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-expiry-"));
  const clock = new ManualClock("2026-11-28T00:00:00.000Z");
  const app = await createApp(loadConfig({ KEYPORTAL_DATA_DIR: dataDir, LOG_LEVEL: "silent", PORT: "0" }), { clock });
  try {
    // The first `due` certificates expire within 100 days (one reminder each); the rest in 200 to 900 days.
    await bulkCertificates(app, { count: tableSize, notAfterDays: (i) => (i < due ? 10 + (i % 90) : 200 + (i % 700)) });
    const start = performance.now();
    const emitted = await app.services.expiryScanner.runOnce();
    return { tableSize, due, scanMs: performance.now() - start, emitted };
  } finally {
    await app.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function expiryBench(scale: number): Promise<ExpiryCase[]> {
  const small = Math.round(2_000 * scale);
  const large = Math.round(20_000 * scale);
  const fewDue = Math.round(200 * scale);
  return [await oneCase(small, fewDue), await oneCase(large, fewDue), await oneCase(large, fewDue * 10)];
}
