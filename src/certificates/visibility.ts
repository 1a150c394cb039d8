import { Brackets, type SelectQueryBuilder, type ObjectLiteral } from "typeorm";
import type { AccessPolicy } from "../policy.js";
import type { Viewer } from "../viewer.js";

/**
 * The list form of AccessPolicy.canReadKeyMaterial: restricts a query over a
 * table with organizationId, kind and environment columns to what the viewer
 * may read. Operators: everything. Officers: their organization, plus for an
 * MSP each active delegation's participant, environment and kinds.
 */
export async function restrictToReadableKeyMaterial<T extends ObjectLiteral>(
  qb: SelectQueryBuilder<T>,
  alias: string,
  policy: AccessPolicy,
  viewer: Viewer,
): Promise<SelectQueryBuilder<T>> {
  const scopes = await policy.readableScopes(viewer);
  if (scopes === null) return qb;
  return qb.andWhere(
    new Brackets((or) => {
      or.where(`${alias}.organizationId = :kmOwn`, { kmOwn: scopes.ownOrganizationId });
      scopes.grants.forEach((grant, i) => {
        or.orWhere(
          `(${alias}.organizationId = :kmP${i} AND ${alias}.environment = :kmE${i} AND ${alias}.kind IN (:...kmK${i}))`,
          { [`kmP${i}`]: grant.participantId, [`kmE${i}`]: grant.environment, [`kmK${i}`]: grant.kinds },
        );
      });
    }),
  );
}
