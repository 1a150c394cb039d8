import type { DataSource, Logger, QueryRunner } from "typeorm";
import type { TestServer } from "./server.js";

export interface Statement {
  sql: string;
  parameters: unknown[];
  /** The query runner (connection) that ran it: what tells one transaction's statements from another's. */
  runner: QueryRunner | undefined;
}

/**
 * Records every statement the server's data sources run, in order: both
 * SQLite connections and the PostgreSQL pool, or with `writerOnly` only the
 * one that runs transactions (SQLite's writing connection; the pool).
 */
export function recordStatements(server: TestServer, opts: { writerOnly?: boolean } = {}): Statement[] {
  const statements: Statement[] = [];
  const sources = new Set<DataSource>(opts.writerOnly ? [server.app.db.dataSource] : [server.app.db.dataSource, server.app.db.readDataSource]);
  for (const source of sources) {
    const logger: Logger = {
      logQuery: (sql, parameters, runner) => void statements.push({ sql, parameters: parameters ?? [], runner }),
      logQueryError: () => undefined,
      logQuerySlow: () => undefined,
      logSchemaBuild: () => undefined,
      logMigration: () => undefined,
      log: () => undefined,
    };
    Object.defineProperty(source, "logger", { value: logger, configurable: true });
  }
  return statements;
}

const CONTROL = /^\s*(BEGIN|START TRANSACTION|SAVEPOINT|RELEASE|COMMIT|ROLLBACK)/i;

/** Whether `sql` begins, ends or marks a transaction or savepoint rather than doing work in it. */
export function isControl(sql: string): boolean {
  return CONTROL.test(sql);
}

/** The statements of each unit of work: per query runner, from a BEGIN/SAVEPOINT to its COMMIT/RELEASE/ROLLBACK. */
export function units(statements: Statement[]): string[][] {
  const open = new Map<QueryRunner | undefined, string[]>();
  const done: string[][] = [];
  for (const { sql, runner } of statements) {
    if (/^\s*(BEGIN|START TRANSACTION|SAVEPOINT)/i.test(sql)) open.set(runner, []);
    else if (CONTROL.test(sql)) {
      const unit = open.get(runner);
      if (unit?.length) done.push(unit);
      open.delete(runner);
    } else open.get(runner)?.push(sql);
  }
  return done;
}

/** A statement on one line, cut short, for printing a breakdown. */
export const shorten = (sql: string): string => sql.replace(/\s+/g, " ").slice(0, 90);
