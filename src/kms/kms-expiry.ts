/**
 * Expiry reminders for the KMS's own certificates, with the notifications'
 * reminder rule (notifications/expiry-scanner.ts: dueExpiryNotice and its
 * dedupe key), run as part of the ExpiryScanner (its lease and schedule).
 */
import type { Mutations } from "../kernel/unit-of-work.js";
import type { Clock } from "../kernel/clock.js";
import { isUniqueViolation } from "../kernel/driver.js";
import type { Database } from "../db/data-source.js";
import { NotificationType } from "../kernel/domain.js";
import { dueExpiryNotice, expiryDedupeKey, type ExpiryNotice } from "../notifications/expiry-scanner.js";
import type { Viewer } from "../viewer.js";
import { KmsCertificate } from "./kms-certificate.entity.js";
import type { KmsCertificates } from "./kms-certificates.js";
import { PURPOSE_TITLES } from "./kms-provisioning.js";

const DAY_MS = 86_400_000;

type ExpiringNotice = Extract<ExpiryNotice, { type: NotificationType.CERTIFICATE_EXPIRING }>;

export class KmsExpiryReminders {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly mutations: Mutations,
    private readonly certs: KmsCertificates,
    /** Reminder thresholds in days (config.expiryReminderDays), the scanner's. */
    private readonly thresholdsDays: readonly number[],
  ) {}

  /**
   * CERTIFICATE_EXPIRING to the KMS organization for each current KMS
   * certificate that reached a reminder threshold (config.expiryReminderDays),
   * with the notifications' expiry rule (dueExpiryNotice): the reminder due is
   * for the smallest threshold T with at most T days left, so one reminder per
   * threshold as time passes, and a certificate first seen inside several
   * thresholds gets only the nearest one, never a burst of stale ones. Sent
   * once per certificate and threshold: dedupeKey kms-expiring:<id>:<T> (the
   * scanner's expiryDedupeKey, prefixed) is unique in the database. Only
   * current certificates: an overlapping predecessor running out is the plan,
   * not news. Returns the number of reminders emitted. Runs as part of the
   * notifications' ExpiryScanner (its lease, schedule and runExpiryScan).
   */
  async scanExpiry(actor: Viewer | null = null): Promise<number> {
    const thresholds = [...new Set(this.thresholdsDays)].sort((a, b) => a - b);
    if (thresholds.length === 0) return 0;
    const now = this.clock.now();
    const horizon = new Date(now.getTime() + thresholds[thresholds.length - 1]! * DAY_MS);
    const due = await this.db.manager
      .getRepository(KmsCertificate)
      .createQueryBuilder("k")
      .where("k.current = :current", { current: true })
      .andWhere("k.retiredAt IS NULL AND k.notAfter > :now AND k.notAfter <= :horizon", { now: now.toISOString(), horizon: horizon.toISOString() })
      .orderBy("k.notAfter", "ASC")
      .getMany();
    let emitted = 0;
    for (const certificate of due) {
      const notice = dueExpiryNotice(certificate.notAfter, now, thresholds);
      // Only CERTIFICATE_EXPIRING: the query reads certificates that have not expired yet.
      if (notice?.type !== NotificationType.CERTIFICATE_EXPIRING) continue;
      const daysLeft = Math.floor((certificate.notAfter.getTime() - now.getTime()) / DAY_MS);
      if (await this.remind(certificate, notice, daysLeft, actor)) emitted++;
    }
    return emitted;
  }

  /**
   * Sends the reminder for the notice's threshold once: its dedupe key (the
   * scanner's, prefixed kms-) is unique in the database, so a second scan, or
   * another instance's at the same moment, fails to insert it and sends nothing.
   */
  private async remind(certificate: KmsCertificate, notice: ExpiringNotice, daysLeft: number, actor: Viewer | null): Promise<boolean> {
    const threshold = notice.days;
    const kmsId = await this.certs.kmsOrganizationId();
    if (!kmsId) return false;
    const { environment, purpose } = certificate;
    try {
      await this.mutations.run(
        {
          action: "kms.certificate.expiring",
          targetType: "KmsCertificate",
          targetId: certificate.id,
          organizationId: kmsId,
          actor,
          details: { environment, purpose, serialNumber: certificate.serialNumber, threshold },
        },
        async ({ notify }) => {
          await notify({
            type: NotificationType.CERTIFICATE_EXPIRING,
            organizationId: kmsId,
            environment,
            kmsCertificateId: certificate.id,
            daysUntilExpiry: threshold,
            dedupeKey: `kms-${expiryDedupeKey(certificate.id, notice)}`,
            message:
              `The KMS's own ${PURPOSE_TITLES[purpose]} certificate for ${environment} (serial ${certificate.serialNumber}) expires on ` +
              `${certificate.notAfter.toISOString()}, in ${daysLeft} day${daysLeft === 1 ? "" : "s"}. ` +
              `Rotate it (rotateKmsCertificate) so that participants have the new one in time.`,
          });
        },
      );
      return true;
    } catch (error) {
      // Sent already (by an earlier scan, or another instance's at the same moment).
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }
}
