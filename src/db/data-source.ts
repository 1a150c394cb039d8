import { mkdirSync } from "node:fs";
import path from "node:path";
import { DataSource, type DataSourceOptions, type EntityManager, type EntityTarget, In, type ObjectLiteral } from "typeorm";
import { boundedPoolOptions, type DatabaseTimeouts } from "./bounded-client.js";
import { ENTITIES } from "./entities.js";
import { MIGRATIONS } from "./migrations/index.js";
import type { Tx } from "../kernel/ports.js";

export interface DatabaseOptions {
  /** postgres://host/db[?schema=name]; absent means SQLite under dataDir. */
  databaseUrl?: string;
  dataDir: string;
  /** PostgreSQL only: connect and statement deadlines (defaults: 5 s and 15 s); null: none (migrations). */
  timeouts?: DatabaseTimeouts | null;
}

const DEFAULT_TIMEOUTS: DatabaseTimeouts = { connectMs: 5000, queryMs: 15_000 };

export function dataSourceOptions(opts: DatabaseOptions): DataSourceOptions {
  const common = { entities: ENTITIES, migrations: MIGRATIONS, synchronize: false, migrationsRun: false, logging: false } as const;
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

/** IN lists stay below this many values: SQLite and PostgreSQL limit the parameters of one statement. */
export const MAX_IN_LIST = 500;

/** Splits values for `IN (...)` lookups of at most MAX_IN_LIST each. */
export function inListChunks<T>(values: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < values.length; i += MAX_IN_LIST) out.push(values.slice(i, i + MAX_IN_LIST));
  return out;
}

/** A database transaction with hooks that run only after it commits. */
/** A transaction in progress (declared in the kernel, which the unit of work is part of). */
export type { Tx } from "../kernel/ports.js";

/**
 * The database as the services see it. SQLite through TypeORM is one
 * connection, so its transactions are queued here one at a time (concurrent
 * BEGINs on one connection would interleave), and reads outside transactions
 * go to a second, reading connection (createSqliteReader); PostgreSQL runs
 * both from its pool.
 */
export class Database {
  private queue: Promise<unknown> = Promise.resolve();
  readonly isPostgres: boolean;

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
    const hooks: Array<() => void> = [];
    const run = () =>
      this.dataSource.transaction((em) =>
        work({
          em,
          afterCommit: (hook) => hooks.push(hook),
        }),
      );
    let result: T;
    if (this.isPostgres) {
      result = await run();
    } else {
      const turn = this.queue.then(run, run);
      this.queue = turn.catch(() => undefined);
      result = await turn;
    }
    for (const hook of hooks) hook();
    return result;
  }

  /**
   * Small background writes (leases, delivery claims) that must not join
   * someone else's transaction: on SQLite they take their turn in the
   * transaction queue; on PostgreSQL a pooled connection in autocommit is enough.
   */
  isolated<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.isPostgres ? work(this.dataSource.manager) : this.transaction(({ em }) => work(em));
  }

  /** Rows by primary key `id`, in chunks that stay under the drivers' parameter limits; order not kept. */
  async findByIds<T extends { id: string | number } & ObjectLiteral>(entity: EntityTarget<T>, ids: readonly (string | number)[]): Promise<T[]> {
    if (ids.length === 0) return [];
    const rows: T[] = [];
    for (const part of inListChunks(ids)) {
      rows.push(...(await this.manager.getRepository(entity).find({ where: { id: In(part) } as never })));
    }
    return rows;
  }

  async initialize(): Promise<void> {
    if (this.reader && !this.reader.isInitialized) await this.reader.initialize();
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
