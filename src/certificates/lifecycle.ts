import { In } from "typeorm";
import type { Database } from "../db/data-source.js";
import { inListChunks } from "../db/data-source.js";
import { CertificateStatus } from "../kernel/domain.js";
import { Certificate } from "./certificate.entity.js";
import { recordCertificateChanges } from "./tallies.js";

const SWEEP_BATCH = 1000;

/**
 * A lifecycle (of alias `c`, its value the parameter `parameter`) as a
 * one-value range, not `=`, in reads ordered by lifecycle first: the
 * sweep's (lifecycle, notAfter), PostgreSQL's status pages' (lifecycle,
 * createdAt, id). So the order asked for is that index's and no other index
 * serves it. With `=`, PostgreSQL drops lifecycle from the order and may
 * read through the notAfter (or createdAt) index instead, walking every
 * certificate of another status first; it does so on a table not vacuumed
 * since its load. (A LIMIT 1 probe with notAfter <= now in the condition let
 * its planner expect an early match and scan the table.)
 */
export function lifecycleRange(parameter: string): string {
  return `c.lifecycle >= :${parameter} AND c.lifecycle <= :${parameter}`;
}

const ACTIVE_RANGE = lifecycleRange("active");

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
    // The first ACTIVE certificate in (lifecycle, notAfter) order: one probe of that index on both databases
    // (lifecycleRange says why lifecycle is a range; MIN(notAfter) read the notAfter index the same way).
    const probe = await this.db.manager
      .createQueryBuilder(Certificate, "c")
      .select("c.notAfter", "next")
      .where(ACTIVE_RANGE, { active: CertificateStatus.ACTIVE })
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
          .where(`${ACTIVE_RANGE} AND c.notAfter <= :now`, { active: CertificateStatus.ACTIVE, now: nowIso })
          .orderBy("c.lifecycle", "ASC")
          .addOrderBy("c.notAfter", "ASC")
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
