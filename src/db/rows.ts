import type { DataSource, EntityMetadata, EntityTarget, ObjectLiteral, SelectQueryBuilder } from "typeorm";
import type { ColumnMetadata } from "typeorm/metadata/ColumnMetadata.js";

/** The one column a packed SQLite row comes in. */
const PACKED = "r";

/**
 * Entities from raw rows, each value through the driver and the column's
 * transformer as TypeORM's own hydration does, without TypeORM's per-query
 * work of aliasing, joining and grouping rows: for the hot reads (the
 * loaders' lookups by id, list pages), where that work cost more than the
 * database's own (docs/read-path.md). The project's entities have plain
 * columns only (text, integers, booleans: no relations, embeddeds,
 * inheritance, floats or blobs); one with more is refused.
 *
 * On SQLite each row comes packed as one JSON array (`json_array` of the
 * columns, in order) and is parsed here: node-sqlite3 builds a row object
 * one N-API property at a time, which at twenty columns and fifty rows cost
 * twice the whole statement. JSON holds SQLite's text, integer and null
 * values as they are (an integer as a JavaScript number, as node-sqlite3
 * gives it).
 */
export class EntityRows<E extends ObjectLiteral> {
  private static readonly cache = new WeakMap<DataSource, Map<unknown, EntityRows<ObjectLiteral>>>();

  /** The mapper of an entity on a data source, made once. */
  static of<E extends ObjectLiteral>(source: DataSource, entity: EntityTarget<E>): EntityRows<E> {
    let bySource = EntityRows.cache.get(source);
    if (!bySource) EntityRows.cache.set(source, (bySource = new Map()));
    let rows = bySource.get(entity);
    if (!rows) bySource.set(entity, (rows = new EntityRows(source, source.getMetadata(entity))));
    return rows as unknown as EntityRows<E>;
  }

  readonly columns: readonly ColumnMetadata[];
  /** SQLite: rows come as one JSON array each. */
  readonly packed: boolean;
  private readonly byIdsStatements = new Map<number, string>();
  private readonly aliased = new Map<string, string[]>();

  private constructor(
    private readonly source: DataSource,
    private readonly metadata: EntityMetadata,
  ) {
    if (metadata.relations.length > 0 || metadata.embeddeds.length > 0 || metadata.inheritancePattern || metadata.childEntityMetadatas.length > 0) {
      throw new Error(`${metadata.name} has relations, embeddeds or inheritance: read it through TypeORM`);
    }
    this.columns = metadata.columns.filter((c) => !c.isVirtual && c.isSelect);
    const unsafe = this.columns.find((c) => /float|double|real|decimal|numeric|blob|bytea|json/i.test(String(c.type)));
    if (unsafe) throw new Error(`${metadata.name}.${unsafe.propertyName} (${String(unsafe.type)}) does not survive a JSON row: read it through TypeORM`);
    this.packed = source.options.type === "sqlite";
  }

  /** What to SELECT for every column, qualified by `alias` when given. */
  selection(alias?: string): string {
    const { driver } = this.source;
    const columns = this.columns.map((c) => (alias ? `${driver.escape(alias)}.` : "") + driver.escape(c.databaseName));
    return this.packed ? `json_array(${columns.join(", ")}) AS ${PACKED}` : columns.join(", ");
  }

  /** One entity from a row as selection() selects it (or, on PostgreSQL, as TypeORM's query builder names its columns: `<alias>_<column>`). */
  map(raw: Record<string, unknown>, alias?: string): E {
    const entity = this.metadata.create(undefined, { fromDeserializer: true }) as E;
    const { driver } = this.source;
    const values = this.packed ? (JSON.parse(raw[PACKED] as string) as unknown[]) : null;
    const keys = !values && alias ? this.keysFor(alias) : null;
    for (let i = 0; i < this.columns.length; i++) {
      const column = this.columns[i]!;
      const value = values ? values[i] : raw[keys ? keys[i]! : column.databaseName];
      if (value === undefined) continue;
      column.setEntityValue(entity, driver.prepareHydratedValue(value, column));
    }
    return entity;
  }

  /** `SELECT <columns> FROM <table> WHERE <primary key> IN (<n placeholders>)`, made once per n. */
  byIdsStatement(n: number): string {
    let sql = this.byIdsStatements.get(n);
    if (!sql) {
      const { driver } = this.source;
      const postgres = this.source.options.type === "postgres";
      const placeholders = Array.from({ length: n }, (_, i) => (postgres ? `$${i + 1}` : "?")).join(", ");
      const key = driver.escape(this.metadata.primaryColumns[0]!.databaseName);
      sql = `SELECT ${this.selection()} FROM ${driver.escape(this.metadata.tableName)} WHERE ${key} IN (${placeholders})`;
      this.byIdsStatements.set(n, sql);
    }
    return sql;
  }

  private keysFor(alias: string): string[] {
    let keys = this.aliased.get(alias);
    if (!keys) {
      const max = this.source.driver.maxAliasLength;
      keys = this.columns.map((c) => {
        const name = `${alias}_${c.databaseName}`;
        // TypeORM shortens a name its driver would not take (PostgreSQL's 63 characters); none here is that long.
        if (max && name.length > max) throw new Error(`the alias ${name} is longer than the driver allows: read it through TypeORM`);
        return name;
      });
      this.aliased.set(alias, keys);
    }
    return keys;
  }
}

/**
 * The entities a query builder selects (one alias, every column, no joins),
 * read as its filter, order and limit say, mapped by EntityRows instead of
 * its own hydration. On SQLite the builder's selection is replaced by the
 * packed one: the builder is used up.
 */
export async function entitiesOf<E extends ObjectLiteral>(qb: SelectQueryBuilder<E>): Promise<E[]> {
  const main = qb.expressionMap.mainAlias;
  if (!main?.hasMetadata || qb.expressionMap.joinAttributes.length > 0 || qb.expressionMap.selects.length !== 1 || qb.expressionMap.selects[0]!.selection !== main.name) {
    throw new Error("entitiesOf reads one alias with all its columns and no joins");
  }
  const rows = EntityRows.of<E>(qb.connection, main.metadata.target as EntityTarget<E>);
  if (rows.packed) qb.select(rows.selection(main.name));
  const raw = await qb.getRawMany<Record<string, unknown>>();
  return raw.map((r) => rows.map(r, main.name));
}
