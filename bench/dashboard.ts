/**
 * A dashboard's page of 50 certificates with nested fields, over HTTP, in a
 * table of thousands; baseline in the same run: `{ me { role } }`, the
 * cheapest authenticated query (authentication + HTTP + GraphQL overhead).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { createApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { bulkCertificates } from "./fixtures.js";
import { measure, type BenchResult } from "./measure.js";

const PAGE = `query($after: String) { certificates(first: 50, after: $after, filter: { environment: MTF }) {
  totalCount pageInfo { endCursor hasNextPage }
  nodes { serialNumber status notAfter daysUntilExpiry organization { name keyExchangeReady } csr { status submittedBy { email } } renewedBy { id } }
} }`;

export async function dashboardBench(tableSize: number, runs: number): Promise<BenchResult[]> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-bench-dashboard-"));
  const token = `kp_bench_${randomBytes(24).toString("base64url")}`;
  const app = await createApp(loadConfig({ KEYPORTAL_DATA_DIR: dataDir, LOG_LEVEL: "silent", PORT: "0", KEYPORTAL_BOOTSTRAP_TOKEN: token }));
  try {
    await bulkCertificates(app, { count: tableSize, notAfterDays: (i) => 30 + (i % 700) });
    const { url } = await app.start();
    const post = async (query: string, variables: Record<string, unknown> = {}) => {
      const res = await fetch(`${url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await res.json()) as { errors?: unknown[] };
      if (body.errors) throw new Error(JSON.stringify(body.errors));
      return body;
    };
    const me = await measure("{ me { role } } (baseline)", runs, () => post(`{ me { role } }`));
    const first = await measure(`first page of 50 certificates, nested fields, in ${tableSize}`, runs, () => post(PAGE));
    return [me, first];
  } finally {
    await app.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
