/**
 * No acknowledged mutation is lost by `kill -9` during batched commits: a
 * real server process on a real SQLite file takes mutations from many
 * concurrent clients, is killed with SIGKILL at a random moment, restarts on
 * the same file, and every id it acknowledged is there.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureCompiled, listeningUrl, spawnServer } from "../foundation/helpers/compiled.js";

const CLIENTS = 16;

describe("kill -9 during group-committed writes", () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-kill-"));
  const token = `kp_${randomBytes(24).toString("base64url")}`;
  const env = { HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info", KEYPORTAL_DATA_DIR: dataDir, KEYPORTAL_BOOTSTRAP_TOKEN: token };

  beforeAll(async () => {
    await ensureCompiled();
  }, 240_000);
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  const gql = async (url: string, query: string, variables: Record<string, unknown>) => {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as { data?: Record<string, { id: string; name?: string } | null>; errors?: unknown[] };
  };

  it("should find every acknowledged mutation after a SIGKILL and a restart", async () => {
    const first = spawnServer(env);
    const url = await listeningUrl(first);
    const acknowledged: Array<{ id: string; name: string }> = [];
    let stop = false;
    let sent = 0;
    const client = async (c: number) => {
      for (let i = 0; !stop; i++) {
        const name = `Crash Bank ${c}-${i}`;
        sent += 1;
        try {
          const result = await gql(url, `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }`, {
            input: { name, kind: "PARTICIPANT", contactEmail: `pki-${c}-${i}@crash.example`, country: "GB" },
          });
          const id = result.data?.createOrganization?.id;
          if (id) acknowledged.push({ id, name });
        } catch {
          return; // the connection died with the process: not acknowledged
        }
      }
    };
    const clients = Array.from({ length: CLIENTS }, (_, c) => client(c));
    // Let batches pile up, then kill at a random moment while requests are in flight.
    while (acknowledged.length < 50) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100 + Math.floor(Math.random() * 400)));
    first.child.kill("SIGKILL");
    stop = true;
    const exit = await first.exited;
    await Promise.all(clients);
    expect(exit.signal).toBe("SIGKILL");
    expect(sent).toBeGreaterThan(acknowledged.length); // some were in flight when it died

    const second = spawnServer(env);
    try {
      const url2 = await listeningUrl(second);
      const missing: string[] = [];
      for (const { id, name } of acknowledged) {
        const result = await gql(url2, `query($id: ID!) { organization(id: $id) { id name } }`, { id });
        if (result.data?.organization?.name !== name) missing.push(id);
      }
      console.log(`kill -9: ${acknowledged.length} acknowledged of ${sent} sent; ${missing.length} missing after restart`);
      expect(missing).toEqual([]);
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
  }, 180_000);
});
