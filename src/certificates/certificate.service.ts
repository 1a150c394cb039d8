import type { SelectQueryBuilder } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { entitiesOf } from "../db/rows.js";
import { CertificateKind, CertificateStatus, Environment } from "../kernel/domain.js";
import { badInput, notFound } from "../kernel/errors.js";
import type { Page } from "../graphql/connection.js";
import { decodeKeysetCursor, encodeKeysetCursor, pageOf, pageSize } from "../graphql/pagination.js";
import { certificateToPem, pkcs7CertsOnly } from "../pki/bundle.js";
import { pemToDers } from "../pki/pem.js";
import type { AccessPolicy } from "../policy.js";
import type { Viewer } from "../viewer.js";
import type { Authorities } from "./authorities.js";
import { Certificate } from "./certificate.entity.js";
import { type CertificateLifecycle, lifecycleRange } from "./lifecycle.js";
import { ALL_ORGANIZATIONS, CertificateTally } from "./tally.entity.js";
import { canonicalSerial } from "./serial.js";
import { mergeKeysetPages, readableKeyMaterialBranches, restrictToReadableKeyMaterial } from "./visibility.js";
import { DAY_MS } from "../kernel/time.js";

export interface CertificateFilter {
  organizationId?: string | null;
  kind?: CertificateKind | null;
  environment?: Environment | null;
  status?: CertificateStatus | null;
  expiringWithinDays?: number | null;
}


/** expiringWithinDays as instants: notAfter in (now, until]; lastDay is until's UTC day. */
interface ExpiryWindow {
  until: string;
  lastDay: string;
  /** Instead of "after now": from this instant on (the count's last day). */
  from?: string;
}

function expiryWindow(filter: CertificateFilter, now: Date): ExpiryWindow | null {
  if (filter.expiringWithinDays == null) return null;
  const days = filter.expiringWithinDays;
  if (!Number.isInteger(days) || days < 0 || days > 3650) throw badInput("INVALID_FILTER", "expiringWithinDays must be between 0 and 3650");
  const until = new Date(now.getTime() + days * DAY_MS).toISOString();
  return { until, lastDay: until.slice(0, 10) };
}

export function certificateStatus(certificate: Pick<Certificate, "revokedAt" | "notAfter">, now: Date): CertificateStatus {
  if (certificate.revokedAt) return CertificateStatus.REVOKED;
  return certificate.notAfter.getTime() <= now.getTime() ? CertificateStatus.EXPIRED : CertificateStatus.ACTIVE;
}

export type DownloadFormat = "pem" | "der" | "p7b" | "chain.pem";

export class CertificateService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly authorities: Authorities,
    private readonly lifecycle: CertificateLifecycle,
  ) {}

  async get(viewer: Viewer | null, id: string): Promise<Certificate | null> {
    const v = this.policy.requireViewer(viewer);
    const certificate = await this.db.manager.findOne(Certificate, { where: { id } });
    return certificate && (await this.policy.canReadKeyMaterial(v, certificate)) ? certificate : null;
  }

  async bySerial(viewer: Viewer | null, serialNumber: string): Promise<Certificate | null> {
    const v = this.policy.requireViewer(viewer);
    const serial = canonicalSerial(serialNumber);
    const certificate = await this.db.manager.findOne(Certificate, { where: { serialNumber: serial } });
    return certificate && (await this.policy.canReadKeyMaterial(v, certificate)) ? certificate : null;
  }

  /**
   * A page in keyset order: newest first (createdAt, id), or with
   * expiringWithinDays soonest to expire first (notAfter, id). Each filter
   * reads an index in that order (docs/read-path.md); totalCount sums the
   * tallies.
   */
  async list(viewer: Viewer | null, filter: CertificateFilter | null | undefined, first: number | null | undefined, after: string | null | undefined): Promise<Page<Certificate>> {
    const v = this.policy.requireViewer(viewer);
    const f = filter ?? {};
    const size = pageSize(first, 50);
    const cursor = decodeKeysetCursor(after);
    const now = this.clock.now();
    const window = expiryWindow(f, now);
    if (f.status || window) await this.lifecycle.sweep(now);
    const order = window
      ? // Soonest first: the (lifecycle, notAfter) indexes give this order over exactly the rows asked for.
        { column: "c.notAfter", direction: "ASC" as const, key: (c: Certificate) => c.notAfter.toISOString() }
      : { column: "c.createdAt", direction: "DESC" as const, key: (c: Certificate) => c.createdAt.toISOString() };
    const cursorOf = (c: Certificate) => encodeKeysetCursor(order.key(c), c.id);
    // A status filter in createdAt order walks (lifecycle, createdAt, id), with lifecycle stated as part of the
    // order and of the row value rather than as `=`: with `=`, PostgreSQL drops lifecycle from the order and may
    // walk the createdAt index instead, and status correlates with time (the newest certificates are ACTIVE), so
    // an EXPIRED page read every ACTIVE row first (90 ms at a million). Only the composite index serves this order.
    // SQLite keeps `=`: its planner (no statistics) prefers an equality's index, and with lifecycle in the order it
    // would sort what another equality (environment, say) selected.
    const byStatus = this.db.isPostgres && !window && f.status ? f.status : null;
    const pages: Certificate[][] = [];
    for (const restrict of await readableKeyMaterialBranches<Certificate>("c", this.policy, v)) {
      const qb = this.db.manager.getRepository(Certificate).createQueryBuilder("c");
      restrict(qb);
      this.applyFilter(qb, byStatus ? { ...f, status: null } : f, now, window);
      const compare = order.direction === "ASC" ? ">" : "<";
      if (byStatus) {
        qb.andWhere(lifecycleRange("sStatus"), { sStatus: byStatus });
        // A row value compares like the index it walks (SQLite and PostgreSQL alike), where an OR would not use it.
        if (cursor) qb.andWhere(`(c.lifecycle, ${order.column}, c.id) ${compare} (:sStatus, :cAt, :cId)`, { cAt: cursor.sortKey, cId: cursor.id });
        qb.orderBy("c.lifecycle", order.direction);
      } else if (cursor) {
        qb.andWhere(`(${order.column}, c.id) ${compare} (:cAt, :cId)`, { cAt: cursor.sortKey, cId: cursor.id });
      }
      pages.push(await entitiesOf(qb.addOrderBy(order.column, order.direction).addOrderBy("c.id", order.direction).limit(size + 1)));
    }
    const rows = mergeKeysetPages(pages, order.direction, (c) => [order.key(c), c.id], size + 1);
    const { nodes, pageInfo } = pageOf(rows, size, cursorOf);
    return { nodes, pageInfo, cursorOf, count: () => this.count(v, f, now, window) };
  }

  /**
   * Exact, from the tallies: the rows matching the filter and the viewer's
   * scopes (operators read the all-organizations rows). expiringWithinDays
   * sums whole days before the last one and counts that last, partial day
   * in the table through its index. The caller has swept at `now`, so every
   * ACTIVE row has notAfter after now.
   */
  private async count(viewer: Viewer, f: CertificateFilter, now: Date, window: ExpiryWindow | null): Promise<number> {
    if (window && f.status && f.status !== CertificateStatus.ACTIVE) return 0;
    const tallies = this.db.manager.createQueryBuilder(CertificateTally, "t").select("COALESCE(SUM(t.n), 0)", "n");
    await restrictToReadableKeyMaterial(tallies, "t", this.policy, viewer);
    // Officers' scopes name organizations, never the all-organizations rows.
    if (f.organizationId) tallies.andWhere("t.organizationId = :fOrg", { fOrg: f.organizationId });
    else if (this.policy.isOperator(viewer)) tallies.andWhere("t.organizationId = :tAll", { tAll: ALL_ORGANIZATIONS });
    if (f.kind) tallies.andWhere("t.kind = :fKind", { fKind: f.kind });
    if (f.environment) tallies.andWhere("t.environment = :fEnv", { fEnv: f.environment });
    if (window) {
      tallies.andWhere("t.lifecycle = :tActive AND t.expiryDay < :tLastDay", { tActive: CertificateStatus.ACTIVE, tLastDay: window.lastDay });
    } else if (f.status) {
      tallies.andWhere("t.lifecycle = :tStatus", { tStatus: f.status });
    }
    const whole = Number((await tallies.getRawOne<{ n: string | number }>())?.n ?? 0);
    if (!window) return whole;
    const lastDay = this.db.manager.getRepository(Certificate).createQueryBuilder("c");
    await restrictToReadableKeyMaterial(lastDay, "c", this.policy, viewer);
    // One lower bound only, the later of now and the day's start: with two, a planner may start the range at the earlier.
    const dayStart = `${window.lastDay}T00:00:00.000Z`;
    this.applyFilter(lastDay, f, now, dayStart > now.toISOString() ? { ...window, from: dayStart } : window);
    return whole + (await lastDay.getCount());
  }

  private applyFilter(qb: SelectQueryBuilder<Certificate>, filter: CertificateFilter, now: Date, window: ExpiryWindow | null): void {
    if (filter.organizationId) qb.andWhere("c.organizationId = :fOrg", { fOrg: filter.organizationId });
    if (filter.kind) qb.andWhere("c.kind = :fKind", { fKind: filter.kind });
    if (filter.environment) qb.andWhere("c.environment = :fEnv", { fEnv: filter.environment });
    switch (filter.status) {
      case CertificateStatus.ACTIVE:
      case CertificateStatus.EXPIRED:
      case CertificateStatus.REVOKED:
        qb.andWhere("c.lifecycle = :fStatus", { fStatus: filter.status });
        break;
      case null:
      case undefined:
        break;
    }
    if (window) {
      qb.andWhere(`c.lifecycle = :eActive AND c.notAfter ${window.from ? ">=" : ">"} :eFrom AND c.notAfter <= :eUntil`, {
        eActive: CertificateStatus.ACTIVE,
        eFrom: window.from ?? now.toISOString(),
        eUntil: window.until,
      });
    }
  }

  status(certificate: Certificate): CertificateStatus {
    return certificateStatus(certificate, this.clock.now());
  }

  der(certificate: Certificate): Uint8Array {
    return new Uint8Array(Buffer.from(certificate.derBase64, "base64"));
  }

  pem(certificate: Certificate): string {
    return certificateToPem(this.der(certificate));
  }

  chainPem(certificate: Certificate): string {
    return this.pem(certificate) + this.authorities.of(certificate.environment).chainPem;
  }

  pkcs7(certificate: Certificate): Uint8Array {
    const chain = pemToDers(this.authorities.of(certificate.environment).chainPem, "CERTIFICATE");
    return pkcs7CertsOnly([this.der(certificate), ...chain]);
  }

  caChain(viewer: Viewer | null, environment: Environment): string {
    this.policy.requireViewer(viewer);
    return this.authorities.of(environment).chainPem;
  }

  /** For REST downloads: the same policy as the GraphQL fields; another tenant's id is NOT_FOUND. */
  async download(viewer: Viewer | null, id: string, format: DownloadFormat): Promise<{ body: Buffer; contentType: string; filename: string }> {
    const certificate = await this.get(viewer, id);
    if (!certificate) throw notFound("certificate");
    const name = `${certificate.commonName.replace(/[^A-Za-z0-9._-]+/g, "_")}-${certificate.serialNumber}`;
    switch (format) {
      case "pem":
        return { body: Buffer.from(this.pem(certificate)), contentType: "application/x-pem-file", filename: `${name}.pem` };
      case "chain.pem":
        return { body: Buffer.from(this.chainPem(certificate)), contentType: "application/x-pem-file", filename: `${name}.chain.pem` };
      case "der":
        return { body: Buffer.from(this.der(certificate)), contentType: "application/pkix-cert", filename: `${name}.der` };
      case "p7b":
        return { body: Buffer.from(this.pkcs7(certificate)), contentType: "application/x-pkcs7-certificates", filename: `${name}.p7b` };
    }
  }

}
