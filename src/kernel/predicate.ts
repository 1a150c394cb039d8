/**
 * A row predicate written once and read two ways: matches(p, row) in memory
 * and toSql(p, alias) as a WHERE fragment with named parameters. The policy
 * states its visibility rules with it, so the check on one object and the
 * filter on a list cannot drift apart.
 */
export type Value = string | number | null;

export type Predicate =
  | { op: "all" }
  | { op: "eq"; column: string; value: Value }
  | { op: "in"; column: string; values: readonly Value[] }
  | { op: "and"; of: readonly Predicate[] }
  | { op: "or"; of: readonly Predicate[] };

export const all: Predicate = { op: "all" };
export const eq = (column: string, value: Value): Predicate => ({ op: "eq", column, value });
export const isIn = (column: string, values: readonly Value[]): Predicate => ({ op: "in", column, values });
export const and = (...of: Predicate[]): Predicate => ({ op: "and", of });
export const or = (...of: Predicate[]): Predicate => ({ op: "or", of });

export function matches(p: Predicate, row: object): boolean {
  const at = (column: string): unknown => (row as Record<string, unknown>)[column];
  switch (p.op) {
    case "all":
      return true;
    case "eq":
      return p.value !== null && at(p.column) === p.value;
    case "in":
      return p.values.some((v) => v !== null && at(p.column) === v);
    case "and":
      return p.of.every((q) => matches(q, row));
    case "or":
      return p.of.some((q) => matches(q, row));
  }
}

/**
 * The WHERE fragment over `alias` (columns as `alias.column`) and its
 * parameters, named `${prefix}0`, `${prefix}1`... (TypeORM's :name and
 * :...name). NULL never matches, as in matches().
 */
export function toSql(p: Predicate, alias: string, prefix = "p"): { sql: string; params: Record<string, unknown> } {
  const params: Record<string, unknown> = {};
  let n = 0;
  const param = (value: unknown): string => {
    const name = `${prefix}${n++}`;
    params[name] = value;
    return name;
  };
  const walk = (q: Predicate): string => {
    switch (q.op) {
      case "all":
        return "1 = 1";
      case "eq":
        return q.value === null ? "1 = 0" : `${alias}.${q.column} = :${param(q.value)}`;
      case "in": {
        const values = q.values.filter((v) => v !== null);
        return values.length === 0 ? "1 = 0" : `${alias}.${q.column} IN (:...${param(values)})`;
      }
      case "and":
        return q.of.length === 0 ? "1 = 1" : `(${q.of.map(walk).join(" AND ")})`;
      case "or":
        return q.of.length === 0 ? "1 = 0" : `(${q.of.map(walk).join(" OR ")})`;
    }
  };
  return { sql: walk(p), params };
}
