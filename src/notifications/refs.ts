import { type Database, inListChunks } from "../db/data-source.js";
import { OfficerStatus, OrganizationKind } from "../kernel/domain.js";
import { ApiToken } from "../officers/api-token.entity.js";
import { Officer } from "../officers/officer.entity.js";
import { Organization } from "../organizations/organization.entity.js";
import type { Viewer } from "../viewer.js";


/**
 * Lookups the notification feature needs of other features' tables, with no
 * policy applied (callers decide visibility): the KMS organization, and
 * which viewers still have access.
 */
export class NotificationRefs {
  private kmsOrganizationId: string | null = null;

  constructor(private readonly db: Database) {}

  /** The KMS organization: the publisher of notifications addressed to an audience rather than one organization. */
  async kmsOrganization(): Promise<string | null> {
    if (this.kmsOrganizationId) return this.kmsOrganizationId;
    const org = await this.db.isolated((em) => em.findOne(Organization, { where: { kind: OrganizationKind.KMS } }));
    this.kmsOrganizationId = org?.id ?? null;
    return this.kmsOrganizationId;
  }

  /**
   * Token ids of these viewers that still grant access: token not revoked and
   * its officer active (OfficerService.stillValid, for many viewers in one query).
   */
  async validTokenIds(viewers: readonly Viewer[]): Promise<Set<string>> {
    const tokenIds = [...new Set(viewers.map((v) => v.tokenId))];
    const valid = new Set<string>();
    if (tokenIds.length === 0) return valid;
    await this.db.isolated(async (em) => {
      for (const part of inListChunks(tokenIds)) {
        const rows = await em
          .createQueryBuilder(ApiToken, "t")
          .innerJoin(Officer, "o", "o.id = t.officerId")
          .select("t.id", "id")
          .where("t.id IN (:...ids)", { ids: part })
          .andWhere("t.revokedAt IS NULL")
          .andWhere("o.status = :active", { active: OfficerStatus.ACTIVE })
          .getRawMany<{ id: string }>();
        for (const row of rows) valid.add(row.id);
      }
    });
    return valid;
  }
}
