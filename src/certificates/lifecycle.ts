import { In } from "typeorm";
import type { Database } from "../db/data-source.js";
import { inListChunks } from "../db/data-source.js";
import { CertificateStatus } from "../kernel/domain.js";
import { Certificate } from "./certificate.entity.js";
import { recordCertificateChanges } from "./tallies.js";

const SWEEP_BATCH = 1000;

/**
 * Expiry by time as a stored change: marks EXPIRED the ACTIVE certificates
 * whose notAfter has passed, with their tallies, in batches of their own
 * transactions. Reads that depend on the status (status filters,
 * expiringWithinDays, their counts) sweep first with the same `now`, and so
 * does the expiry scan; when nothing has expired since, that is one index
 * probe. Not audited: the status the API shows was already EXPIRED, derived
 * from notAfter; this only moves the row to the index for it.
 *
 * On PostgreSQL the rows are locked (FOR UPDATE) before they change, as a
 * revocation locks its row, so each row moves once and its tally with it.
 */
export class CertificateLifecycle {
  private last: Promise<unknown> = Promise.resolve();

  constructor(private readonly db: Database) {}

  /** Resolves with how many certificates this call marked EXPIRED. One sweep at a time per process. */
  sweep(now: Date): Promise<number> {
    const mine = this.last.then(
      () => this.sweepNow(now),
      () => this.sweepNow(now),
    );
    this.last = mine.catch(() => undefined);
    return mine;
  }

  private async sweepNow(now: Date): Promise<number> {
    const nowIso = now.toISOString();
    // The first ACTIVE certificate in (lifecycle, notAfter) order: one probe of that index on both databases.
    // lifecycle as a range, not `=`, so that the order asked for is the index's and no other index serves it:
    // with `=` PostgreSQL drops lifecycle from the order and may answer through the notAfter index instead,
    // walking every expired certificate (the oldest ones) before the first ACTIVE one, as it does for
    // MIN(notAfter) on a table not vacuumed since its load. (With notAfter <= now in the condition too, its
    // planner expected an early match and scanned the table.)
    const probe = await this.db.manager
      .createQueryBuilder(Certificate, "c")
      .select("c.notAfter", "next")
      .where("c.lifecycle >= :active AND c.lifecycle <= :active", { active: CertificateStatus.ACTIVE })
      .orderBy("c.lifecycle", "ASC")
      .addOrderBy("c.notAfter", "ASC")
      .limit(1)
      .getRawOne<{ next: string | null }>();
    if (!probe?.next || probe.next > nowIso) return 0;
    let total = 0;
    for (;;) {
      const moved = await this.db.transaction(async ({ em }) => {
        const qb = em
          .createQueryBuilder(Certificate, "c")
          .select(["c.id", "c.organizationId", "c.environment", "c.kind", "c.notAfter"])
          .where("c.lifecycle = :active AND c.notAfter <= :now", { active: CertificateStatus.ACTIVE, now: nowIso })
          .orderBy("c.notAfter", "ASC")
          .addOrderBy("c.id", "ASC")
          .limit(SWEEP_BATCH);
        if (this.db.isPostgres) qb.setLock("pessimistic_write");
        const due = await qb.getMany();
        for (const part of inListChunks(due.map((c) => c.id))) {
          await em.update(Certificate, { id: In(part), lifecycle: CertificateStatus.ACTIVE }, { lifecycle: CertificateStatus.EXPIRED });
        }
        await recordCertificateChanges(
          em,
          due.map((certificate) => ({ certificate, from: CertificateStatus.ACTIVE, to: CertificateStatus.EXPIRED })),
        );
        return due.length;
      });
      total += moved;
      if (moved < SWEEP_BATCH) return total;
    }
  }
}
