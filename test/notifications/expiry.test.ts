import "reflect-metadata";
import { In } from "typeorm";
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/kernel/clock.js";
import { Certificate } from "../../src/certificates/certificate.entity.js";
import { NotificationType } from "../../src/kernel/domain.js";
import { EmailDelivery } from "../../src/notifications/email-delivery.entity.js";
import { dueExpiryNotice } from "../../src/notifications/expiry-scanner.js";
import { Notification } from "../../src/notifications/notification.entity.js";
import { makeTempDir } from "../pki/helpers.js";
import { issueMtf } from "../readpath/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { collect, issueCertificate, latestId } from "./helpers.js";

const hasOpenssl = await available("openssl");
const postgres = await available("postgres");
const DAY = 86_400_000;
const SCAN = `mutation { runExpiryScan }`;

describe("the expiry reminder rule", () => {
  const now = new Date("2027-01-01T00:00:00.000Z");
  const at = (days: number) => new Date(now.getTime() + days * DAY);
  const thresholds = [120, 60, 30, 7, 1];

  it("should name the smallest threshold a certificate is inside, and nothing outside them all", () => {
    expect(dueExpiryNotice(at(121), now, thresholds)).toBeNull();
    expect(dueExpiryNotice(at(120), now, thresholds)).toEqual({ type: "CERTIFICATE_EXPIRING", days: 120 });
    expect(dueExpiryNotice(at(100), now, thresholds)).toEqual({ type: "CERTIFICATE_EXPIRING", days: 120 });
    expect(dueExpiryNotice(at(50), now, thresholds)).toEqual({ type: "CERTIFICATE_EXPIRING", days: 60 });
    expect(dueExpiryNotice(at(0.5), now, thresholds)).toEqual({ type: "CERTIFICATE_EXPIRING", days: 1 });
    expect(dueExpiryNotice(at(0), now, thresholds)).toEqual({ type: "CERTIFICATE_EXPIRED" });
    expect(dueExpiryNotice(at(-3), now, thresholds)).toEqual({ type: "CERTIFICATE_EXPIRED" });
  });
});

describe.skipIf(!hasOpenssl)("expiry reminders", () => {
  let server: TestServer | undefined;
  const tmp = makeTempDir("kp-expiry-");
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(): Promise<{ server: TestServer; org: TestOrganization; clock: ManualClock }> {
    const clock = new ManualClock("2027-01-01T08:00:00.000Z");
    server = await startTestServer({ clock });
    return { server, org: await createOrganization(server), clock };
  }

  const scan = async (s: TestServer): Promise<number> => (await s.ok<{ runExpiryScan: number }>(SCAN)).runExpiryScan;

  async function expiryRows(s: TestServer, certificateId: string): Promise<Array<Pick<Notification, "type" | "daysUntilExpiry" | "dedupeKey">>> {
    const rows = await s.app.db.manager.find(Notification, { where: { certificateId }, order: { id: "ASC" } });
    return rows
      .filter((n) => n.type === "CERTIFICATE_EXPIRING" || n.type === "CERTIFICATE_EXPIRED")
      .map((n) => ({ type: n.type, daysUntilExpiry: n.daysUntilExpiry, dedupeKey: n.dedupeKey }));
  }

  it("should remind once each at 120, 60, 30, 7 and 1 days before expiry, a second scan none, and announce the expiry once", async () => {
    const { server: s, org, clock } = await start();
    // 200, not 365 days: the KMS's own certificates, created at start for 365 days, would reach the same thresholds in the same scans.
    const certificate = await issueCertificate(s, tmp.path, org, { validityDays: 200 });
    const notAfter = new Date(certificate.notAfter).getTime();
    const sub = collect(s.wsClient(org.officers[1]!.token), { after: await latestId(s), types: ["CERTIFICATE_EXPIRING", "CERTIFICATE_EXPIRED"] });

    expect(await scan(s)).toBe(0);
    clock.set(new Date(notAfter - 121 * DAY));
    expect(await scan(s)).toBe(0);
    for (const days of [120, 60, 30, 7, 1]) {
      clock.set(new Date(notAfter - days * DAY));
      expect(await scan(s), `first scan ${days} days before`).toBe(1);
      expect(await scan(s), `second scan ${days} days before`).toBe(0);
      const { certificate: seen } = await s.ok<{ certificate: { daysUntilExpiry: number } }>(
        `query($id: ID!) { certificate(id: $id) { daysUntilExpiry } }`,
        { id: certificate.id },
        org.officers[0]!.token,
      );
      expect(seen.daysUntilExpiry).toBe(days);
    }
    clock.set(new Date(notAfter));
    expect(await scan(s)).toBe(1);
    clock.advanceDays(3);
    expect(await scan(s)).toBe(0);

    expect(await expiryRows(s, certificate.id)).toEqual([
      ...[120, 60, 30, 7, 1].map((d) => ({ type: "CERTIFICATE_EXPIRING", daysUntilExpiry: d, dedupeKey: `expiring:${certificate.id}:${d}` })),
      { type: "CERTIFICATE_EXPIRED", daysUntilExpiry: null, dedupeKey: `expired:${certificate.id}` },
    ]);
    await sub.waitFor((n) => n.type === "CERTIFICATE_EXPIRED", "CERTIFICATE_EXPIRED over the subscription");
    expect(sub.items.map((n) => [n.type, n.daysUntilExpiry, n.certificate?.id])).toEqual([
      ...[120, 60, 30, 7, 1].map((d) => ["CERTIFICATE_EXPIRING", d, certificate.id]),
      ["CERTIFICATE_EXPIRED", null, certificate.id],
    ]);
    const { certificate: expired } = await s.ok<{ certificate: { daysUntilExpiry: number } }>(
      `query($id: ID!) { certificate(id: $id) { daysUntilExpiry } }`,
      { id: certificate.id },
    );
    expect(expired.daysUntilExpiry).toBe(-3);
    sub.stop();
  });

  it("should give a certificate signed with validityDays 100 its 120-day reminder on the next runExpiryScan", async () => {
    const { server: s, org, clock } = await start();
    const certificate = await issueCertificate(s, tmp.path, org, { validityDays: 100 });
    expect(await scan(s)).toBe(1);
    expect(await scan(s)).toBe(0);
    expect(await expiryRows(s, certificate.id)).toEqual([
      { type: "CERTIFICATE_EXPIRING", daysUntilExpiry: 120, dedupeKey: `expiring:${certificate.id}:120` },
    ]);
    clock.set(new Date(new Date(certificate.notAfter).getTime() - 60 * DAY));
    expect(await scan(s)).toBe(1);
    expect((await expiryRows(s, certificate.id)).map((r) => r.daysUntilExpiry)).toEqual([120, 60]);
  });

  it("should remind a certificate first seen 50 days before expiry for 60 days only, never late for 120", async () => {
    const { server: s, org, clock } = await start();
    const certificate = await issueCertificate(s, tmp.path, org, { validityDays: 50 });
    expect(await scan(s)).toBe(1);
    clock.advanceDays(25); // 25 days left: inside 30
    expect(await scan(s)).toBe(1);
    expect(await scan(s)).toBe(0);
    expect((await expiryRows(s, certificate.id)).map((r) => r.daysUntilExpiry)).toEqual([60, 30]);
  });

  it("should not remind of a revoked certificate, nor of one renewed by a good successor, but again once that successor is revoked", async () => {
    const { server: s, org } = await start();
    const revoked = await issueCertificate(s, tmp.path, org, { validityDays: 90 });
    const renewed = await issueCertificate(s, tmp.path, org, { validityDays: 90 });
    const successor = await issueCertificate(s, tmp.path, org, { validityDays: 365, renewalOf: renewed.id });
    // Through the write queue, as the server writes (a write on the reading connection could race a batch already open).
    await s.app.db.transaction(({ em }) => em.update(Certificate, { id: revoked.id }, { revokedAt: s.clock.now(), revocationReason: null }));

    expect(await scan(s)).toBe(0);
    expect(await expiryRows(s, revoked.id)).toEqual([]);
    expect(await expiryRows(s, renewed.id)).toEqual([]);

    // The successor is revoked (its key was compromised): the old certificate needs its officers' attention again.
    await s.app.db.transaction(({ em }) => em.update(Certificate, { id: successor.id }, { revokedAt: s.clock.now() }));
    expect(await scan(s)).toBe(1);
    expect(await expiryRows(s, renewed.id)).toEqual([{ type: "CERTIFICATE_EXPIRING", daysUntilExpiry: 120, dedupeKey: `expiring:${renewed.id}:120` }]);
  });

  it("should emit each reminder once when scans race, and let only operators run one", async () => {
    const { server: s, org } = await start();
    for (let i = 0; i < 3; i++) await issueCertificate(s, tmp.path, org, { validityDays: 30 });
    const results = await Promise.all([scan(s), scan(s), s.app.services.expiryScanner.runOnce({ waitMs: 5000 }), scan(s)]);
    expect(results.reduce((a, b) => a + b, 0)).toBe(3);
    const officer = await s.gql(SCAN, {}, org.officers[0]!.token);
    expect(officer.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    const anonymous = await s.gql(SCAN, {}, null);
    expect(anonymous.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  });
});

describe.each<DbKind>(["sqlite", "postgres"])("expiry reminders emitted meanwhile, on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer | undefined;
    afterEach(async () => {
      await server?.close();
      server = undefined;
    });

    it("should remind once of certificates that come due through two ranges of one scan: a threshold crossed, and signed since the last scan", async () => {
      const s = (server = await startTestServer({ db }));
      const org = await createOrganization(s);
      expect(await s.app.services.expiryScanner.runOnce({ waitMs: 5000 })).toBe(0);
      const ids: string[] = [];
      // 60 days and a minute: two minutes later each has crossed the 60-day threshold, and was signed since the last scan.
      for (let i = 0; i < 3; i++) ids.push(await issueMtf(s, org, `Twice ${i}`, { validityDays: 60 }));
      await s.app.db.transaction(({ em }) => em.update(Certificate, { id: In(ids) }, { notAfter: new Date(s.clock.now().getTime() + 60 * DAY + 60_000) }));
      s.clock.advanceMs(120_000);
      // The first batch's INSERTs wait (up to a second) for a second batch's, as a slow transaction would: its rows
      // are still uncommitted while the scan reads and writes the next batch.
      const { outbox } = s.app.services;
      const insertMany = outbox.insertMany.bind(outbox);
      let secondArrived = () => undefined as void;
      const second = new Promise<void>((resolve) => (secondArrived = resolve));
      let calls = 0;
      outbox.insertMany = async (em, composed) => {
        calls += 1;
        if (calls === 1) await Promise.race([second, new Promise((resolve) => setTimeout(resolve, 1000))]);
        else secondArrived();
        return insertMany(em, composed);
      };
      try {
        expect(await s.app.services.expiryScanner.runOnce()).toBe(3);
      } finally {
        outbox.insertMany = insertMany;
      }
      const rows = await s.app.db.manager.find(Notification, { where: { certificateId: In(ids), type: NotificationType.CERTIFICATE_EXPIRING } });
      expect(rows.map((r) => r.dedupeKey).sort()).toEqual(ids.map((id) => `expiring:${id}:60`).sort());
    });

    it("should leave out, inside the transaction, a reminder another scan emitted after the batch was read, and emit the others once", async () => {
      const s = (server = await startTestServer({ db }));
      const org = await createOrganization(s);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(await issueMtf(s, org, `Meanwhile ${i}`, { validityDays: 30 }));
      const { outbox } = s.app.services;
      const compose = outbox.compose.bind(outbox);
      // Another instance's scan commits the first reminder while this one composes its batch (after its look-up, before its transaction).
      let meanwhile = true;
      outbox.compose = async (em, notifications) => {
        const composed = await compose(em, notifications);
        const first = notifications[0]!;
        if (meanwhile) {
          meanwhile = false;
          await s.app.db.transaction(({ em: other }) =>
            other.insert(Notification, { ...first, message: "emitted by the other scan", occurredAt: s.clock.now() }),
          );
        }
        return composed;
      };
      try {
        expect(await s.app.services.expiryScanner.runOnce()).toBe(2);
      } finally {
        outbox.compose = compose;
      }
      const rows = await s.app.db.manager.find(Notification, { where: { certificateId: In(ids), type: NotificationType.CERTIFICATE_EXPIRING } });
      expect(rows.map((r) => r.dedupeKey).sort()).toEqual(ids.map((id) => `expiring:${id}:30`).sort());
      const theirs = rows.find((r) => r.message === "emitted by the other scan")!;
      expect(theirs).toBeDefined();
      const mailed = await s.app.db.manager.find(EmailDelivery, { where: { notificationId: In(rows.map((r) => r.id)) } });
      expect(mailed.length).toBeGreaterThan(0);
      expect(mailed.some((m) => m.notificationId === theirs.id)).toBe(false);
      expect(new Set(mailed.map((m) => m.notificationId)).size).toBe(2);
      expect(await s.app.services.expiryScanner.runOnce()).toBe(0);
    });
  });
});
