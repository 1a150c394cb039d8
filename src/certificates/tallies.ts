import type { EntityManager } from "typeorm";
import type { CertificateSigningRequest } from "../csrs/csr.entity.js";
import { CertificateStatus, type CsrStatus } from "../kernel/domain.js";
import type { Certificate } from "./certificate.entity.js";
import { ALL_ORGANIZATIONS } from "./tally.entity.js";

/**
 * The maintained counts behind totalCount (docs/read-path.md). Every insert
 * of a certificate or CSR row and every change of its lifecycle or status
 * goes through recordCertificateChanges / recordCsrChanges, in the
 * transaction of the change itself, so the tallies are exactly as committed
 * as the rows they count.
 */

export interface CertificateChange {
  certificate: Pick<Certificate, "organizationId" | "environment" | "kind" | "notAfter">;
  /** null: the row is new. */
  from: CertificateStatus | null;
  to: CertificateStatus;
}

export interface CsrChange {
  csr: Pick<CertificateSigningRequest, "organizationId" | "environment" | "kind">;
  /** null: the row is new. */
  from: CsrStatus | null;
  to: CsrStatus;
}

/** ACTIVE certificates are counted by the UTC day of notAfter (expiringWithinDays); the others by lifecycle alone. */
export function expiryDayOf(lifecycle: CertificateStatus, notAfter: Date): string {
  return lifecycle === CertificateStatus.ACTIVE ? notAfter.toISOString().slice(0, 10) : "";
}

/** Issuance, revocation and expiry by time all land here, batched by whoever calls. */
export async function recordCertificateChanges(em: EntityManager, changes: readonly CertificateChange[]): Promise<void> {
  const deltas = new Deltas();
  for (const { certificate: c, from, to } of changes) {
    if (from === to) continue;
    for (const org of [c.organizationId, ALL_ORGANIZATIONS]) {
      if (from) deltas.add([org, c.environment, c.kind, from, expiryDayOf(from, c.notAfter)], -1);
      deltas.add([org, c.environment, c.kind, to, expiryDayOf(to, c.notAfter)], +1);
    }
  }
  await upsert(em, "certificate_tallies", ["organizationId", "environment", "kind", "lifecycle", "expiryDay"], deltas);
}

/** Submission and every decision on a CSR. */
export async function recordCsrChanges(em: EntityManager, changes: readonly CsrChange[]): Promise<void> {
  const deltas = new Deltas();
  for (const { csr, from, to } of changes) {
    if (from === to) continue;
    for (const org of [csr.organizationId, ALL_ORGANIZATIONS]) {
      if (from) deltas.add([org, csr.environment, csr.kind, from], -1);
      deltas.add([org, csr.environment, csr.kind, to], +1);
    }
  }
  await upsert(em, "csr_tallies", ["organizationId", "environment", "kind", "status"], deltas);
}

class Deltas {
  private readonly byKey = new Map<string, { key: string[]; n: number }>();

  add(key: string[], n: number): void {
    const id = JSON.stringify(key);
    const entry = this.byKey.get(id) ?? { key, n: 0 };
    entry.n += n;
    this.byKey.set(id, entry);
  }

  /** Non-zero deltas in key order: concurrent transactions lock tally rows in the same order and cannot deadlock on them. */
  entries(): Array<{ key: string[]; n: number }> {
    return [...this.byKey.entries()]
      .filter(([, e]) => e.n !== 0)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, e]) => e);
  }
}

const ROWS_PER_STATEMENT = 200;

async function upsert(em: EntityManager, table: string, keyColumns: string[], deltas: Deltas): Promise<void> {
  const entries = deltas.entries();
  const postgres = em.connection.driver.options.type === "postgres";
  const columns = [...keyColumns, "n"].map((c) => `"${c}"`).join(", ");
  for (let start = 0; start < entries.length; start += ROWS_PER_STATEMENT) {
    const part = entries.slice(start, start + ROWS_PER_STATEMENT);
    const params: unknown[] = [];
    const rows = part.map((e) => {
      const values = [...e.key, e.n].map((v) => {
        params.push(v);
        return postgres ? `$${params.length}` : "?";
      });
      return `(${values.join(", ")})`;
    });
    await em.query(
      `INSERT INTO "${table}" (${columns}) VALUES ${rows.join(", ")}
       ON CONFLICT (${keyColumns.map((c) => `"${c}"`).join(", ")}) DO UPDATE SET "n" = "${table}"."n" + excluded."n"`,
      params,
    );
  }
}

/**
 * Rebuilds both tallies from the rows (for bulk loads that bypass the
 * services, and to repair): the same sums the migration started them with.
 */
export async function recountTallies(em: EntityManager): Promise<void> {
  await em.query(`DELETE FROM "certificate_tallies"`);
  await em.query(`DELETE FROM "csr_tallies"`);
  const day = `CASE WHEN "lifecycle" = 'ACTIVE' THEN substr("notAfter", 1, 10) ELSE '' END`;
  for (const org of [`"organizationId"`, `'${ALL_ORGANIZATIONS}'`]) {
    await em.query(
      `INSERT INTO "certificate_tallies" ("organizationId", "environment", "kind", "lifecycle", "expiryDay", "n")
       SELECT ${org}, "environment", "kind", "lifecycle", ${day}, COUNT(*) FROM "certificates" GROUP BY 1, 2, 3, 4, 5`,
    );
    await em.query(
      `INSERT INTO "csr_tallies" ("organizationId", "environment", "kind", "status", "n")
       SELECT ${org}, "environment", "kind", "status", COUNT(*) FROM "certificate_signing_requests" GROUP BY 1, 2, 3, 4`,
    );
  }
}
