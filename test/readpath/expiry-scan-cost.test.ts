/**
 * The expiry scan reads what became due since the last scan, not every
 * certificate waiting inside the reminder horizon: a certificate already
 * reminded is not looked at again until it crosses its next threshold.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { issueMtf } from "./helpers.js";
import { recordStatements, type Statement } from "../support/statements.js";

const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("expiry scan cost on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;
    let statements: Statement[];
    const dedupeLookups = () => statements.filter((s) => /FROM "notifications"/.test(s.sql) && /"dedupeKey" IN/.test(s.sql));

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "GB" });
      // Inside the 120-day horizon from the start: 70 to 89 days left; the 60-day threshold comes 10 to 29 days later.
      for (let i = 0; i < 20; i++) await issueMtf(server, org, `Horizon ${i}`, { validityDays: 70 + i });
      // Signed an hour before the scan: outside the slack with which a scan looks back for recent signatures.
      server.clock.advanceMs(3_600_000);
      expect(await server.app.services.expiryScanner.runOnce()).toBe(20);
      statements = recordStatements(server);
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    it("should look up no notice at all when nothing crossed a threshold since the last scan", async () => {
      server.clock.advanceDays(1);
      statements.length = 0;
      expect(await server.app.services.expiryScanner.runOnce()).toBe(0);
      expect(dedupeLookups()).toEqual([]);
    });

    it("should look at exactly the certificates that crossed a threshold, and remind each once", async () => {
      // Now 14 days after issuance: those with 70 to 74 days have crossed 60.
      server.clock.advanceDays(13);
      statements.length = 0;
      expect(await server.app.services.expiryScanner.runOnce()).toBe(5);
      const keys = dedupeLookups().flatMap((s) => s.parameters.filter((p) => typeof p === "string" && p.startsWith("expiring:")));
      expect(new Set(keys).size).toBe(5);
      statements.length = 0;
      expect(await server.app.services.expiryScanner.runOnce()).toBe(0);
      expect(dedupeLookups()).toEqual([]);
    });
  });
});
