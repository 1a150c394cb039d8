import type { SelectQueryBuilder } from "typeorm";
import type { Clock } from "../clock.js";
import type { Database } from "../db/data-source.js";
import { CertificateKind, CertificateStatus, Environment } from "../domain.js";
import { badInput, notFound } from "../errors.js";
import type { Page } from "../graphql/connection.js";
import { decodeKeysetCursor, encodeKeysetCursor, pageOf, pageSize } from "../graphql/pagination.js";
import { certificateToPem, pkcs7CertsOnly } from "../pki/bundle.js";
import { pemToDers } from "../pki/pem.js";
import type { AccessPolicy } from "../policy.js";
import type { Viewer } from "../viewer.js";
import type { Authorities } from "./authorities.js";
import { Certificate } from "./certificate.entity.js";
import { canonicalSerial } from "./serial.js";
import { restrictToReadableKeyMaterial } from "./visibility.js";

export interface CertificateFilter {
  organizationId?: string | null;
  kind?: CertificateKind | null;
  environment?: Environment | null;
  status?: CertificateStatus | null;
  expiringWithinDays?: number | null;
}

const DAY_MS = 86_400_000;

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

  async list(viewer: Viewer | null, filter: CertificateFilter | null | undefined, first: number | null | undefined, after: string | null | undefined): Promise<Page<Certificate>> {
    const v = this.policy.requireViewer(viewer);
    const size = pageSize(first, 50);
    const cursor = decodeKeysetCursor(after);
    const now = this.clock.now();
    const base = async () => {
      const qb = this.db.manager.getRepository(Certificate).createQueryBuilder("c");
      await restrictToReadableKeyMaterial(qb, "c", this.policy, v);
      this.applyFilter(qb, filter ?? {}, now);
      return qb;
    };
    const qb = await base();
    if (cursor) {
      qb.andWhere("(c.createdAt < :cAt OR (c.createdAt = :cAt AND c.id < :cId))", { cAt: cursor.sortKey, cId: cursor.id });
    }
    const rows = await qb.orderBy("c.createdAt", "DESC").addOrderBy("c.id", "DESC").take(size + 1).getMany();
    const cursorOf = (c: Certificate) => encodeKeysetCursor(c.createdAt.toISOString(), c.id);
    const { nodes, pageInfo } = pageOf(rows, size, cursorOf);
    return { nodes, pageInfo, cursorOf, count: async () => (await base()).getCount() };
  }

  private applyFilter(qb: SelectQueryBuilder<Certificate>, filter: CertificateFilter, now: Date): void {
    const nowIso = now.toISOString();
    if (filter.organizationId) qb.andWhere("c.organizationId = :fOrg", { fOrg: filter.organizationId });
    if (filter.kind) qb.andWhere("c.kind = :fKind", { fKind: filter.kind });
    if (filter.environment) qb.andWhere("c.environment = :fEnv", { fEnv: filter.environment });
    switch (filter.status) {
      case CertificateStatus.ACTIVE:
        qb.andWhere("c.revokedAt IS NULL AND c.notAfter > :fNow", { fNow: nowIso });
        break;
      case CertificateStatus.EXPIRED:
        qb.andWhere("c.revokedAt IS NULL AND c.notAfter <= :fNow", { fNow: nowIso });
        break;
      case CertificateStatus.REVOKED:
        qb.andWhere("c.revokedAt IS NOT NULL");
        break;
      case null:
      case undefined:
        break;
    }
    if (filter.expiringWithinDays != null) {
      const days = filter.expiringWithinDays;
      if (!Number.isInteger(days) || days < 0 || days > 3650) throw badInput("INVALID_FILTER", "expiringWithinDays must be between 0 and 3650");
      qb.andWhere("c.revokedAt IS NULL AND c.notAfter > :eNow AND c.notAfter <= :eUntil", {
        eNow: nowIso,
        eUntil: new Date(now.getTime() + days * DAY_MS).toISOString(),
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
