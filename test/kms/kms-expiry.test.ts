/**
 * Operators are reminded before the KMS's own certificates expire, at the
 * configured thresholds, once each, only for current certificates.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Environment, KmsCertificatePurpose, NotificationType, OrganizationKind } from "../../src/kernel/domain.js";
import { KmsCertificate } from "../../src/kms/kms-certificate.entity.js";
import { Notification } from "../../src/notifications/notification.entity.js";
import { Organization } from "../../src/organizations/organization.entity.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { ROTATE_KMS } from "./helpers.js";

describe("KMS certificate expiry reminders", () => {
  let server: TestServer;
  let kmsOrganizationId: string;

  beforeAll(async () => {
    server = await startTestServer({ env: { KEYPORTAL_EXPIRY_REMINDER_DAYS: "120,60,30,7,1" } });
    kmsOrganizationId = (await server.app.db.manager.findOneByOrFail(Organization, { kind: OrganizationKind.KMS })).id;
  });

  afterAll(async () => {
    await server?.close();
  });

  const reminders = () =>
    server.app.db.manager.find(Notification, { where: { type: NotificationType.CERTIFICATE_EXPIRING }, order: { id: "ASC" } });

  it("should remind nobody while every KMS certificate is far from expiry", async () => {
    expect(await server.app.services.kms.scanExpiry()).toBe(0);
    expect(await reminders()).toEqual([]);
  });

  it("should send each current certificate's 120-day reminder to the KMS organization once, even when scans race", async () => {
    server.clock.advanceDays(250); // 115 days left of 365
    const [a, b] = await Promise.all([server.app.services.kms.scanExpiry(), server.app.services.kms.scanExpiry()]);
    expect(a + b).toBe(6);
    expect(await server.app.services.kms.scanExpiry()).toBe(0);
    const rows = await reminders();
    const current = await server.app.db.manager.find(KmsCertificate, { where: { current: true } });
    expect(rows.map((r) => r.kmsCertificateId).sort()).toEqual(current.map((c) => c.id).sort());
    for (const row of rows) {
      expect(row).toMatchObject({ organizationId: kmsOrganizationId, daysUntilExpiry: 120, audience: null, certificateId: null });
      expect(row.dedupeKey).toBe(`kms-expiring:${row.kmsCertificateId}:120`);
      expect(row.message).toMatch(/in 115 days\. Rotate it/);
    }
  });

  it("should remind only for current certificates, at the nearest threshold reached, never a burst of skipped ones", async () => {
    const { rotateKmsCertificate: rotated } = await server.ok<{ rotateKmsCertificate: { id: string } }>(ROTATE_KMS, {
      environment: "MTF",
      purpose: "MESSAGE_SIGNING",
    });
    const previous = await server.app.db.manager.findOneByOrFail(KmsCertificate, {
      environment: Environment.MTF,
      purpose: KmsCertificatePurpose.MESSAGE_SIGNING,
      current: false,
    });

    server.clock.advanceDays(60); // 55 days left for the original certificates
    // The operators' manual scan covers the KMS's certificates too.
    const { runExpiryScan } = await server.ok<{ runExpiryScan: number }>(`mutation { runExpiryScan }`);
    expect(runExpiryScan).toBe(5);
    server.clock.advanceDays(50); // 5 days left: the 30-day threshold was skipped while nobody scanned
    expect(await server.app.services.kms.scanExpiry()).toBe(5);
    expect(await server.app.services.kms.scanExpiry()).toBe(0);

    const rows = await reminders();
    const thresholds = (id: string) => rows.filter((r) => r.kmsCertificateId === id).map((r) => r.daysUntilExpiry);
    expect(thresholds(previous.id)).toEqual([120]);
    expect(thresholds(rotated.id)).toEqual([]);
    const others = await server.app.db.manager.find(KmsCertificate, { where: { current: true } });
    for (const certificate of others.filter((c) => c.id !== rotated.id)) expect(thresholds(certificate.id)).toEqual([120, 60, 7]);

    const audited = (await server.app.db.dataSource.query(`SELECT COUNT(*) AS n FROM audit_events WHERE action = 'kms.certificate.expiring'`)) as Array<{
      n: number | string;
    }>;
    expect(Number(audited[0]!.n)).toBe(rows.length);
  });
});
