/**
 * The expiry scan reads what became due since the last scan, not every
 * certificate waiting inside the reminder horizon: a certificate already
 * reminded is not looked at again until it crosses its next threshold. And
 * what it runs to emit a batch of reminders does not grow with the batch:
 * recipients and subjects read for the batch before its transaction, the
 * notifications and their emails in multi-row INSERTs inside it.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { In } from "typeorm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Certificate } from "../../src/certificates/certificate.entity.js";
import { CertificateSigningRequest } from "../../src/csrs/csr.entity.js";
import { EmailDelivery } from "../../src/notifications/email-delivery.entity.js";
import { Notification } from "../../src/notifications/notification.entity.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { issueMtf } from "./helpers.js";
import { isControl, recordStatements, shorten, type Statement, units } from "../support/statements.js";

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

/**
 * `count` more certificates like `certificateId` (each with its own signed
 * CSR, serial and notAfter a minute apart), in `organizations` in turn,
 * written in one transaction through the write queue.
 */
async function copies(server: TestServer, certificateId: string, organizations: TestOrganization[], count: number): Promise<string[]> {
  const original = await server.app.db.manager.findOneByOrFail(Certificate, { id: certificateId });
  const request = await server.app.db.manager.findOneByOrFail(CertificateSigningRequest, { id: original.csrId });
  const csrs: CertificateSigningRequest[] = [];
  const certificates: Certificate[] = [];
  for (let i = 0; i < count; i++) {
    const organizationId = organizations[i % organizations.length]!.id;
    const csrId = randomUUID();
    const id = randomUUID();
    const commonName = `Copy ${i}`;
    csrs.push({ ...request, id: csrId, organizationId, commonName, certificateId: id });
    certificates.push({
      ...original,
      id,
      csrId,
      organizationId,
      commonName,
      serialNumber: randomBytes(16).toString("hex"),
      notAfter: new Date(original.notAfter.getTime() - (i + 1) * 60_000),
    });
  }
  await server.app.db.transaction(async ({ em }) => {
    await em.insert(CertificateSigningRequest, csrs);
    await em.insert(Certificate, certificates);
  });
  return certificates.map((c) => c.id);
}

/** Statements one scan emitting a batch of DUE reminders may run, whatever DUE: before, about 10 per reminder inside the transaction. */
const DUE = 200;
const SCAN_BUDGET = 40;
const UNIT_BUDGET = 8;

describe.each<DbKind>(["sqlite", "postgres"])("the statements of an expiry scan on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let orgs: TestOrganization[];

    beforeAll(async () => {
      server = await startTestServer({ db });
      orgs = [await createOrganization(server, { country: "GB" }), await createOrganization(server, { country: "FR" })];
      // 31 days: inside the 60-day threshold, and off the instants the thresholds fall on, so all come due through one range.
      const first = await issueMtf(server, orgs[0]!, "Copied", { validityDays: 31 });
      await copies(server, first, orgs, DUE - 1);
      // The emails are counted here, not sent: the delivery worker's claims would run on the same connections meanwhile.
      await server.app.services.emailWorker.stop();
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    it(`should emit ${DUE} reminders in at most ${SCAN_BUDGET} statements, at most ${UNIT_BUDGET} inside the transaction, printing the breakdown`, async () => {
      const statements = recordStatements(server);
      expect(await server.app.services.expiryScanner.runOnce()).toBe(DUE);
      const work = statements.filter((s) => !isControl(s.sql)).map((s) => shorten(s.sql));
      const emitting = units(statements).filter((unit) => unit.some((sql) => /INSERT INTO "notifications"/.test(sql)));
      console.log(
        `expiry scan of ${DUE} on ${db}: ${work.length} statements, ${emitting[0]?.length} inside the transaction that emits\n  ${work.join("\n  ")}`,
      );
      expect(emitting).toHaveLength(1);
      expect(emitting[0]!.length).toBeLessThanOrEqual(UNIT_BUDGET);
      expect(work.length).toBeLessThanOrEqual(SCAN_BUDGET);

      // Each reminder mailed to its organization's contact and two officers.
      const reminders = await server.app.db.manager.find(Notification, { where: { type: "CERTIFICATE_EXPIRING" as Notification["type"] } });
      expect(reminders).toHaveLength(DUE);
      const deliveries = await server.app.db.manager.countBy(EmailDelivery, { notificationId: In(reminders.map((n) => n.id)) });
      expect(deliveries).toBe(DUE * 3);
    }, 60_000);
  });
});

/**
 * `count` certificates like the first one in the table (each with its own
 * signed CSR), written by SQL in one statement each: created over three
 * years and valid a year, so most have expired and are the oldest by
 * notAfter; every 50th revoked; the last `due` signed a minute ago and
 * expiring within 100 days.
 */
async function fillTable(server: TestServer, count: number, due: number): Promise<void> {
  const postgres = server.app.db.isPostgres;
  const now = server.clock.now().getTime();
  const day = 86_400_000;
  const series = postgres
    ? `generate_series(1::bigint, ${count}) AS g(i)`
    : `(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${count}) SELECT i FROM s) g`;
  const iso = (ms: string) =>
    postgres ? `to_char(to_timestamp((${ms}) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')` : `strftime('%Y-%m-%dT%H:%M:%fZ', (${ms}) / 1000.0, 'unixepoch')`;
  const hex = postgres ? `lpad(to_hex(g.i), 31, '0')` : `printf('%031x', g.i)`;
  const first = count - due;
  const created = `CASE WHEN g.i > ${first} THEN ${now - 60_000} ELSE ${now - 3 * 365 * day} + g.i * ${Math.floor((3 * 365 * day - 130 * day) / count)} END`;
  const notAfter = `CASE WHEN g.i > ${first} THEN ${now} + (1 + g.i % 100) * ${day} ELSE (${created}) + ${365 * day} END`;
  const revoked = `(g.i % 50 = 7 AND g.i <= ${first})`;
  await server.app.db.transaction(async ({ em }) => {
    await em.query(`INSERT INTO certificate_signing_requests (id, "organizationId", kind, environment, status, subject, "commonName", "keyAlgorithm", "publicKeyFingerprint", pem, "submittedById", "submittedAt", "certificateId")
      SELECT 'r' || ${hex}, r."organizationId", r.kind, r.environment, 'SIGNED', r.subject, r."commonName", r."keyAlgorithm", ${hex}, '-', r."submittedById", r."submittedAt", 'c' || ${hex}
      FROM ${series}, (SELECT * FROM certificate_signing_requests LIMIT 1) r`);
    await em.query(`INSERT INTO certificates (id, "organizationId", kind, environment, "serialNumber", subject, issuer, "commonName", "keyAlgorithm", "publicKeyFingerprint", "notBefore", "notAfter", "fingerprintSha256", "derBase64", "csrId", "revokedAt", "createdAt", lifecycle)
      SELECT 'c' || ${hex}, c."organizationId", c.kind, c.environment, ${hex}, c.subject, c.issuer, c."commonName", c."keyAlgorithm", ${hex}, ${iso(created)}, ${iso(notAfter)}, c."fingerprintSha256", '', 'r' || ${hex},
        CASE WHEN ${revoked} THEN ${iso(created)} END, ${iso(created)},
        CASE WHEN ${revoked} THEN 'REVOKED' WHEN (${notAfter}) <= ${now} THEN 'EXPIRED' ELSE 'ACTIVE' END
      FROM ${series}, (SELECT * FROM certificates LIMIT 1) c`);
  });
  // As autovacuum would after such a load: statistics, not a vacuum (the visibility map stays unset).
  if (postgres) await server.app.db.dataSource.query("ANALYZE");
}

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Rows Removed by Filter"?: number;
  Plans?: PlanNode[];
}

/** Rows of `certificates` a PostgreSQL plan read and threw away, and whether it scanned the table whole. */
function certificateWaste(node: PlanNode): { removed: number; seqScan: boolean } {
  const own = node["Relation Name"] === "certificates";
  const children = (node.Plans ?? []).map(certificateWaste);
  return {
    removed: (own ? (node["Rows Removed by Filter"] ?? 0) : 0) + children.reduce((n, c) => n + c.removed, 0),
    seqScan: (own && node["Node Type"] === "Seq Scan") || children.some((c) => c.seqScan),
  };
}

const TABLE = 20_000;
const TABLE_DUE = 200;

describe.each<DbKind>(["sqlite", "postgres"])("the expiry scan's reads of a table of mostly expired certificates on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;

    beforeAll(async () => {
      server = await startTestServer({ db });
      const org = await createOrganization(server, { country: "GB" });
      await issueMtf(server, org, "Template", { validityDays: 365 });
      await fillTable(server, TABLE, TABLE_DUE);
      await server.app.services.emailWorker.stop();
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    it("should page EXPIRED certificates, newest first and after a cursor, without reading past the ACTIVE ones signed since", async () => {
      const page = `query($after: String) { certificates(first: 20, after: $after, filter: { status: EXPIRED }) { pageInfo { endCursor } nodes { status } } }`;
      let after: string | null = null;
      for (let i = 0; i < 2; i++) {
        const statements = recordStatements(server);
        const data: { certificates: { pageInfo: { endCursor: string }; nodes: Array<{ status: string }> } } = await server.ok(page, { after });
        expect(data.certificates.nodes.map((n) => n.status)).toEqual(Array(20).fill("EXPIRED"));
        after = data.certificates.pageInfo.endCursor;
        const list = statements.filter((st) => /FROM "certificates"/.test(st.sql) && /ORDER BY/.test(st.sql) && /LIMIT 21/.test(st.sql));
        expect(list).toHaveLength(1);
        if (db !== "postgres") continue;
        const [{ "QUERY PLAN": [plan] }] = (await server.app.db.dataSource.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${list[0]!.sql}`, list[0]!.parameters)) as Array<{
          "QUERY PLAN": Array<{ Plan: PlanNode }>;
        }>;
        const waste = certificateWaste(plan!.Plan);
        expect(waste.seqScan, shorten(list[0]!.sql)).toBe(false);
        // The ACTIVE ones are the newest: a walk of the createdAt index would throw every one of them away first.
        expect(waste.removed, shorten(list[0]!.sql)).toBe(0);
      }
    });

    it(`should read certificates only through index ranges that hold what it looks for, not the ${TABLE - TABLE_DUE} that expired before`, async () => {
      const statements = recordStatements(server);
      expect(await server.app.services.expiryScanner.runOnce()).toBe(TABLE_DUE);
      // Once more with nothing due: the sweep's probe and the empty ranges.
      expect(await server.app.services.expiryScanner.runOnce()).toBe(0);
      // Two days on: the sweep moves those with a day left to EXPIRED, and the scan reminds those crossing a threshold.
      server.clock.advanceDays(2);
      expect(await server.app.services.expiryScanner.runOnce()).toBeGreaterThan(0);
      // The sweep's read is among those examined.
      expect(statements.some((s) => /"c"\."lifecycle".*"c"\."notAfter" <= /.test(s.sql))).toBe(true);
      const reads = statements.filter((s) => /^\s*SELECT/i.test(s.sql) && /FROM "certificates"/.test(s.sql));
      expect(reads.length).toBeGreaterThan(5);
      for (const { sql, parameters } of reads) {
        if (db === "postgres") {
          const [{ "QUERY PLAN": [plan] }] = (await server.app.db.dataSource.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, parameters)) as Array<{
            "QUERY PLAN": Array<{ Plan: PlanNode }>;
          }>;
          const waste = certificateWaste(plan!.Plan);
          expect(waste.seqScan, shorten(sql)).toBe(false);
          // At most what is due and what the filters rightly drop from it (revoked ones, renewed ones): never the expired.
          expect(waste.removed, shorten(sql)).toBeLessThanOrEqual(TABLE_DUE);
        } else {
          const plan = (await server.app.db.readDataSource.query(`EXPLAIN QUERY PLAN ${sql}`, parameters)) as Array<{ detail: string }>;
          expect(plan.filter((p) => /^SCAN /.test(p.detail)), shorten(sql)).toEqual([]);
        }
      }
    }, 60_000);
  });
});
