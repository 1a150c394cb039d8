import type { SelectQueryBuilder, ObjectLiteral } from "typeorm";
import { or, toSql } from "../kernel/predicate.js";
import { type AccessPolicy, readableKeyMaterialPredicates } from "../policy.js";
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
  const { sql, params } = toSql(or(...readableKeyMaterialPredicates(scopes)), alias, "km");
  return qb.andWhere(sql, params);
}

/**
 * restrictToReadableKeyMaterial as separate predicates, one per way the
 * viewer may read (operators: one, unrestricted; officers: their
 * organization, then each delegation grant). A list runs one query per
 * predicate, each walking its own index in keyset order for at most a page,
 * and merges them (mergeKeysetPages): one OR over them would read and sort
 * every match instead.
 */
export async function readableKeyMaterialBranches<T extends ObjectLiteral>(
  alias: string,
  policy: AccessPolicy,
  viewer: Viewer,
): Promise<Array<(qb: SelectQueryBuilder<T>) => void>> {
  const scopes = await policy.readableScopes(viewer);
  if (scopes === null) return [() => undefined];
  return readableKeyMaterialPredicates(scopes).map((predicate) => {
    const { sql, params } = toSql(predicate, alias, "km");
    return (qb: SelectQueryBuilder<T>) => qb.andWhere(sql, params);
  });
}

/** The first `limit` distinct rows (by id) of several pages that are each in the keyset order of `key`. */
export function mergeKeysetPages<T extends { id: string }>(pages: T[][], direction: "ASC" | "DESC", key: (row: T) => [string, string], limit: number): T[] {
  if (pages.length === 1) return pages[0]!.slice(0, limit);
  const byId = new Map<string, T>();
  for (const page of pages) for (const row of page) byId.set(row.id, row);
  const sign = direction === "ASC" ? 1 : -1;
  const compare = (a: T, b: T) => {
    const [ka, kb] = [key(a), key(b)];
    return sign * (ka[0] < kb[0] ? -1 : ka[0] > kb[0] ? 1 : ka[1] < kb[1] ? -1 : ka[1] > kb[1] ? 1 : 0);
  };
  return [...byId.values()].sort(compare).slice(0, limit);
}
