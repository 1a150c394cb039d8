/**
 * /metrics counts certificates from the tallies, not by grouping the
 * certificates table: the figures must equal a real count of the rows, by
 * status as of now, also for certificates past notAfter that the lifecycle
 * sweep has not marked yet, and for the 30-day window's partial days.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { issueMtf } from "./helpers.js";
import { recordStatements } from "../support/statements.js";

const postgres = await available("postgres");
const DAY_MS = 86_400_000;

/** What the metrics said before the tallies: one pass over every certificate. */
async function realCounts(server: TestServer): Promise<{ byStatus: Record<string, number>; expiring30d: number }> {
  const now = server.clock.now();
  const p = (i: number) => (server.app.db.isPostgres ? `$${i}` : "?");
  const rows = (await server.app.db.manager.query(
    `SELECT environment, CASE WHEN "revokedAt" IS NOT NULL THEN 'REVOKED' WHEN "notAfter" <= ${p(1)} THEN 'EXPIRED' ELSE 'ACTIVE' END AS status, COUNT(*) AS n
       FROM certificates GROUP BY 1, 2`,
    [now.toISOString()],
  )) as Array<{ environment: string; status: string; n: string | number }>;
  const expiring = (await server.app.db.manager.query(
    `SELECT COUNT(*) AS n FROM certificates WHERE "revokedAt" IS NULL AND "notAfter" > ${p(1)} AND "notAfter" <= ${p(2)}`,
    [now.toISOString(), new Date(now.getTime() + 30 * DAY_MS).toISOString()],
  )) as Array<{ n: string | number }>;
  return {
    byStatus: Object.fromEntries(rows.map((r) => [`${r.environment}/${r.status}`, Number(r.n)])),
    expiring30d: Number(expiring[0]?.n ?? 0),
  };
}

async function scraped(server: TestServer): Promise<{ byStatus: Record<string, number>; expiring30d: number }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const byStatus: Record<string, number> = {};
  for (const m of text.matchAll(/^keyportal_certificates\{environment="(\w+)",status="(\w+)"\} (\d+)$/gm)) byStatus[`${m[1]}/${m[2]}`] = Number(m[3]);
  const expiring = /^keyportal_certificates_expiring_30d (\d+)$/m.exec(text);
  return { byStatus, expiring30d: Number(expiring?.[1] ?? NaN) };
}

describe.each<DbKind>(["sqlite", "postgres"])("certificate metrics from the tallies on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;
    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { name: "Metrics Tally Bank", country: "GB" });
      // 1 and 3 days (they expire below), 20 and 30 days (inside the window, one on its last day), 45 and 365 (outside).
      for (const days of [1, 3, 20, 30, 45, 365]) await issueMtf(server, org, `Tally ${days}`, { validityDays: days });
      const revoked = await issueMtf(server, org, "Tally revoked", { validityDays: 20 });
      await server.ok(`mutation($id: ID!) { revokeCertificate(certificateId: $id, reason: SUPERSEDED) { id } }`, { id: revoked });
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    it("should match a real count of the rows at issuance", async () => {
      const real = await realCounts(server);
      expect(real.byStatus["MTF/ACTIVE"]).toBe(6);
      expect(await scraped(server)).toEqual(real);
    });

    it("should count as EXPIRED what passed notAfter before the sweep marked it, and keep the 30-day window exact", async () => {
      // 1 day and a half later: the 1-day certificate is past notAfter earlier today or yesterday, still ACTIVE as stored.
      server.clock.advanceMs(1.5 * DAY_MS);
      const real = await realCounts(server);
      expect(real.byStatus["MTF/EXPIRED"]).toBe(1);
      expect(await scraped(server)).toEqual(real);
      // Exactly at a notAfter (the 3-day certificate): EXPIRED, as the rows say.
      const stored = (await server.app.db.manager.query(`SELECT "notAfter" FROM certificates ORDER BY "notAfter"`)) as Array<{ notAfter: string }>;
      server.clock.set(new Date(stored[1]!.notAfter));
      expect(await scraped(server)).toEqual(await realCounts(server));
      // Far enough that the 30-day window's last day holds the 45-day certificate.
      server.clock.set(new Date(Date.parse(stored[1]!.notAfter) + 15 * DAY_MS));
      const later = await realCounts(server);
      expect(await scraped(server)).toEqual(later);
    });

    it("should not group the certificates table: it reads the tallies and one day of the index", async () => {
      const statements = recordStatements(server);
      await scraped(server);
      const overCertificates = statements.filter((s) => /FROM\s+"?certificates"?\s/i.test(s.sql));
      expect(statements.some((s) => s.sql.includes("certificate_tallies"))).toBe(true);
      expect(overCertificates.length).toBeGreaterThan(0);
      for (const s of overCertificates) expect(s.sql).toMatch(/lifecycle = 'ACTIVE' AND "notAfter" >=? \S+ AND "notAfter" <=? /);
    });
  });
});
