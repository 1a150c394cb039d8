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
