import { mkdirSync } from "node:fs";
import path from "node:path";
import sqlite3 from "sqlite3";
import { DataSource, type DataSourceOptions, type EntityManager, type EntityTarget, type ObjectLiteral } from "typeorm";
import { boundedPoolOptions, type DatabaseTimeouts } from "./bounded-client.js";
import { MIGRATIONS } from "./migrations/index.js";
import { EntityRows } from "./rows.js";
import type { Tx } from "../kernel/ports.js";

export interface DatabaseOptions {
  /** postgres://host/db[?schema=name]; absent means SQLite under dataDir. */
  databaseUrl?: string;
  dataDir: string;
  /**
   * The entities to map: the features' (src/features.ts ENTITIES), handed in
   * by the composition root. db/ does not import the list itself: the
   * features' services import db/, so it would be an import cycle.
   */
  entities: readonly Function[];
  /** PostgreSQL only: connect and statement deadlines (defaults: 5 s and 15 s); null: none (migrations). */
  timeouts?: DatabaseTimeouts | null;
}

const DEFAULT_TIMEOUTS: DatabaseTimeouts = { connectMs: 5000, queryMs: 15_000 };

/**
 * sqlite3 as TypeORM gets it, without verbose mode: TypeORM calls
 * `verbose()` on the driver it loads, and that wraps every call on every
 * connection to capture a stack trace and util.inspect each argument (the
 * SQL and its parameters), a cost on every statement paid only to decorate
 * errors. SQLite's errors keep their code and message without it.
 */
const quietSqlite3: typeof sqlite3 = Object.assign(Object.create(sqlite3) as typeof sqlite3, { verbose: () => quietSqlite3 });

export function dataSourceOptions(opts: DatabaseOptions): DataSourceOptions {
  const common = { entities: [...opts.entities] as Function[], migrations: MIGRATIONS, synchronize: false, migrationsRun: false, logging: false } as const;
  if (opts.databaseUrl) {
    const url = new URL(opts.databaseUrl);
    const schema = url.searchParams.get("schema");
    url.searchParams.delete("schema");
    return {
      ...common,
      type: "postgres",
      url: url.toString(),
      // A schema per deployment (or per test run) through search_path, so raw SQL stays unqualified.
      extra: {
        max: 10,
        ...(opts.timeouts === null ? {} : boundedPoolOptions(opts.timeouts ?? DEFAULT_TIMEOUTS)),
        ...(schema ? { options: `-c search_path=${schema}` } : {}),
      },
    };
  }
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  return {
    ...common,
    type: "sqlite",
    driver: quietSqlite3,
    database: path.join(opts.dataDir, "keyportal.sqlite"),
    enableWAL: true,
    busyTimeout: 10_000,
  };
}

/**
 * Instances that start together on one PostgreSQL database would run the
 * same migrations at once (and fail on CREATE TABLE); an advisory lock per
 * schema lets one migrate while the others wait, then find nothing to do.
 */
class KeyPortalDataSource extends DataSource {
  override async runMigrations(options?: Parameters<DataSource["runMigrations"]>[0]): ReturnType<DataSource["runMigrations"]> {
    if (this.options.type !== "postgres") return super.runMigrations(options);
    const lock = this.createQueryRunner();
    await lock.connect();
    const key = `hashtext('keyportal.migrations.' || current_schema())`;
    try {
      await lock.query(`SELECT pg_advisory_lock(${key})`);
      return await super.runMigrations(options);
    } finally {
      await lock.query(`SELECT pg_advisory_unlock(${key})`).catch(() => undefined);
      await lock.release();
    }
  }
}

export function createDataSource(opts: DatabaseOptions): DataSource {
  return new KeyPortalDataSource(dataSourceOptions(opts));
}

/**
 * SQLite only: a second connection to the same file for reads outside
 * transactions. TypeORM gives SQLite one connection, and a read on it while
 * a mutation's transaction is open would see that transaction's uncommitted
 * rows; in WAL mode this connection sees only what has committed, and reads
 * never wait for writes. Nothing writes through it.
 */
export function createSqliteReader(opts: DatabaseOptions): DataSource | null {
  const options = dataSourceOptions(opts);
  if (options.type !== "sqlite") return null;
  return new DataSource({ ...options, migrations: [] });
}

/** Each SQLite connection's page cache, in KiB (filled as pages are read, up to this). */
export const SQLITE_CACHE_KIB = 65_536;

/** IN lists stay below this many values: SQLite and PostgreSQL limit the parameters of one statement. */
export const MAX_IN_LIST = 500;

/** Splits values for `IN (...)` lookups of at most MAX_IN_LIST each. */
export function inListChunks<T>(values: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < values.length; i += MAX_IN_LIST) out.push(values.slice(i, i + MAX_IN_LIST));
  return out;
}

/**
 * Rows by primary key `id` through `em` (a transaction's, or the reading
 * connection's), in chunks that stay under the drivers' parameter limits;
 * order not kept. One statement per chunk length, made once, and mapped by
 * EntityRows.
 */
export async function findByIds<T extends { id: string | number } & ObjectLiteral>(em: EntityManager, entity: EntityTarget<T>, ids: readonly (string | number)[]): Promise<T[]> {
  if (ids.length === 0) return [];
  const mapper = EntityRows.of(em.connection, entity);
  const rows: T[] = [];
  for (const part of inListChunks(ids)) {
    const raw = (await em.query(mapper.byIdsStatement(part.length), part)) as Array<Record<string, unknown>>;
    for (const r of raw) rows.push(mapper.map(r));
  }
  return rows;
}

/** Parameters per statement of insertRows: under SQLite's limit (32766) and PostgreSQL's (65535). */
const MAX_PARAMETERS = 30_000;

/**
 * Multi-row INSERTs of `rows` as their entity maps them (each value through
 * the driver, its column transformer included; columns the database
 * generates left out), as many rows per statement as MAX_PARAMETERS allows.
 * Built directly rather than through TypeORM's query builder, whose work per
 * value costs more than running the statement at thousands of rows.
 * `returning`: a column whose values come back (RETURNING, on SQLite and
 * PostgreSQL), in no promised order.
 */
export async function insertRows<E extends ObjectLiteral>(
  em: EntityManager,
  entity: EntityTarget<E>,
  rows: readonly E[],
  options: { returning?: string } = {},
): Promise<unknown[]> {
  const { driver } = em.connection;
  const metadata = em.connection.getMetadata(entity);
  const columns = metadata.columns.filter((c) => c.isInsert && !c.isGenerated);
  const postgres = em.connection.options.type === "postgres";
  const perStatement = Math.max(1, Math.floor(MAX_PARAMETERS / columns.length));
  const into = `INSERT INTO ${driver.escape(metadata.tableName)} (${columns.map((c) => driver.escape(c.databaseName)).join(", ")}) VALUES `;
  const returnedColumn = options.returning ? metadata.findColumnWithPropertyName(options.returning) : undefined;
  if (options.returning && !returnedColumn) throw new Error(`${metadata.name} has no column ${options.returning}`);
  const returning = returnedColumn ? ` RETURNING ${driver.escape(returnedColumn.databaseName)}` : "";
  const returned: unknown[] = [];
  for (let start = 0; start < rows.length; start += perStatement) {
    const parameters: unknown[] = [];
    const values = rows.slice(start, start + perStatement).map((row) => {
      const placeholders = columns.map((column) => {
        parameters.push(driver.preparePersistentValue(column.getEntityValue(row), column) ?? null);
        return postgres ? `$${parameters.length}` : "?";
      });
      return `(${placeholders.join(", ")})`;
    });
    // TypeORM's SQLite runner hands a statement that starts with "INSERT " to sqlite3's run(), which drops what RETURNING
    // gives; led by a comment, it goes to all(), which returns the rows.
    const sql = `${returning ? "/* returning */ " : ""}${into}${values.join(", ")}${returning}`;
    const result = (await em.query(sql, parameters)) as Array<Record<string, unknown>>;
    if (returnedColumn) for (const row of result) returned.push(row[returnedColumn.databaseName]);
  }
  return returned;
}

/** A database transaction with hooks that run only after it commits. */
/** A transaction in progress (declared in the kernel, which the unit of work is part of). */
export type { Tx } from "../kernel/ports.js";

/**
 * SQLite group commit: at most `units` units of work share one BEGIN ...
 * COMMIT (one fsync), and a batch takes no new unit once it has run `ms`,
 * so that the first caller's wait stays bounded.
 */
export interface BatchLimits {
  units: number;
  ms: number;
}

export const DEFAULT_BATCH_LIMITS: Readonly<BatchLimits> = { units: 64, ms: 20 };

/** A unit of work waiting for (or in) a batch. */
interface Unit {
  work: (tx: Tx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * The database as the services see it. SQLite through TypeORM is one
 * connection; its transactions are group-committed here (docs/write-path.md):
 * the units of work that queue up while one batch runs form the next batch,
 * one BEGIN ... COMMIT for all of them, each in a SAVEPOINT of its own so
 * that a refusal (a thrown error) rolls back only itself (ROLLBACK TO +
 * RELEASE). Units still run one after the other on the connection (a
 * savepoint is a stack); what they share is the COMMIT, the one fsync. Every
 * caller is answered, and its afterCommit hooks run, only once the batch's
 * COMMIT has returned; if it fails, every caller of the batch fails. Reads
 * outside transactions go to a second, reading connection
 * (createSqliteReader), which sees committed data only. PostgreSQL runs
 * both from its pool, one database transaction per unit.
 */
export class Database {
  private readonly pending: Unit[] = [];
  private draining = false;
  readonly isPostgres: boolean;
  /** SQLite: how large a batch may grow (a test on a loaded machine widens the time bound to see one batch). */
  readonly batchLimits: BatchLimits = { ...DEFAULT_BATCH_LIMITS };

  constructor(
    readonly dataSource: DataSource,
    private readonly reader: DataSource | null = null,
  ) {
    this.isPostgres = dataSource.options.type === "postgres";
  }

  /** For reads outside a transaction: they see committed data only. Writes go through transaction(). */
  get manager(): EntityManager {
    return (this.reader ?? this.dataSource).manager;
  }

  /** The connection that manager reads through (tests count its statements). */
  get readDataSource(): DataSource {
    return this.reader ?? this.dataSource;
  }

  async transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    if (this.isPostgres) {
      const hooks: Array<() => void> = [];
      const result = await this.dataSource.transaction((em) => work({ em, afterCommit: (hook) => hooks.push(hook) }));
      for (const hook of hooks) hook();
      return result;
    }
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.pending.length > 0) await this.commitBatch();
    } finally {
      this.draining = false;
    }
  }

  /** One batch: BEGIN, each waiting unit in its savepoint, COMMIT; then the answers. */
  private async commitBatch(): Promise<void> {
    const runner = this.dataSource.createQueryRunner();
    const done: Array<{ unit: Unit; ok: true; result: unknown; hooks: Array<() => void> } | { unit: Unit; ok: false; error: unknown }> = [];
    let failed: { error: unknown } | null = null;
    try {
      await runner.startTransaction();
      const started = performance.now();
      while (this.pending.length > 0 && done.length < this.batchLimits.units && (done.length === 0 || performance.now() - started < this.batchLimits.ms)) {
        const unit = this.pending.shift()!;
        const hooks: Array<() => void> = [];
        try {
          await runner.query("SAVEPOINT unit_of_work");
          const result = await unit.work({ em: runner.manager, afterCommit: (hook) => hooks.push(hook) });
          await runner.query("RELEASE unit_of_work");
          done.push({ unit, ok: true, result, hooks });
        } catch (error) {
          done.push({ unit, ok: false, error });
          try {
            await runner.query("ROLLBACK TO unit_of_work");
            await runner.query("RELEASE unit_of_work");
          } catch (rollbackError) {
            // The transaction itself is gone (SQLite rolls it back on some errors): nothing of this batch holds.
            failed = { error: rollbackError };
            break;
          }
        }
      }
      if (!failed) await runner.commitTransaction();
    } catch (error) {
      failed = { error };
    }
    if (failed && runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
    await runner.release();
    for (const entry of done) {
      if (failed) entry.unit.reject(failed.error);
      else if (!entry.ok) entry.unit.reject(entry.error);
      else {
        try {
          for (const hook of entry.hooks) hook();
          entry.unit.resolve(entry.result);
        } catch (error) {
          entry.unit.reject(error);
        }
      }
    }
    // BEGIN itself failed: the first waiting unit is answered with that, so that no caller waits on a broken connection forever.
    if (failed && done.length === 0) this.pending.shift()?.reject(failed.error);
  }

  /**
   * Small background writes (leases, delivery claims) that must not join
   * someone else's transaction: on SQLite they take their turn in the
   * transaction queue; on PostgreSQL a pooled connection in autocommit is enough.
   */
  isolated<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.isPostgres ? work(this.dataSource.manager) : this.transaction(({ em }) => work(em));
  }

  /** findByIds on the reading connection: the loaders' lookups, several per page of a list. */
  findByIds<T extends { id: string | number } & ObjectLiteral>(entity: EntityTarget<T>, ids: readonly (string | number)[]): Promise<T[]> {
    return findByIds(this.manager, entity, ids);
  }

  async initialize(): Promise<void> {
    if (!this.isPostgres && this.dataSource.isInitialized) {
      // WAL with synchronous=FULL: every COMMIT fsyncs the WAL before it returns, so an answered
      // mutation survives a crash of the process and of the machine (NORMAL would survive only the former).
      await this.dataSource.query("PRAGMA synchronous = FULL");
    }
    if (this.reader && !this.reader.isInitialized) await this.reader.initialize();
    if (!this.isPostgres) {
      // SQLite's default page cache is 2 MiB per connection: at a million certificates a page of 50 and its
      // nested rows touch pages spread over the file, each then read again through a system call.
      for (const source of new Set([this.dataSource, this.readDataSource])) await source.query(`PRAGMA cache_size = -${SQLITE_CACHE_KIB}`);
    }
  }

  async close(): Promise<void> {
    if (this.reader?.isInitialized) await this.reader.destroy();
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }

  private migrated = false;

  async isReady(): Promise<boolean> {
    return (await this.readiness()) === "ok";
  }

  /** Reachable and fully migrated; once migrated, only the reachability is asked again. */
  async readiness(): Promise<"ok" | "unreachable" | "migrations pending"> {
    if (!this.dataSource.isInitialized) return "unreachable";
    try {
      await this.dataSource.query("SELECT 1");
      if (!this.migrated) this.migrated = !(await this.dataSource.showMigrations());
      return this.migrated ? "ok" : "migrations pending";
    } catch {
      return "unreachable";
    }
  }
}
