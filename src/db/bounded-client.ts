import { createRequire } from "node:module";

/** The slice of pg's Client this file uses (pg ships no types here). */
interface PgClient {
  on(event: "error", listener: (error: Error) => void): unknown;
  query(...args: unknown[]): unknown;
  connection?: { stream?: { destroy(error?: Error): void } };
}
type PgClientClass = new (config?: unknown) => PgClient;
const pg = createRequire(import.meta.url)("pg") as { Client: PgClientClass };

/** How long PostgreSQL work may take, as given to dataSourceOptions. */
export interface DatabaseTimeouts {
  /** Opening a connection, and waiting for a free one in the pool. */
  connectMs: number;
  /** One statement (server-side statement_timeout); the client drops the connection graceMs after it. */
  queryMs: number;
}

/** Extra time the client allows past statement_timeout before it decides the connection itself is dead. */
export const QUERY_GRACE_MS = 1000;

/** The error a query gets when its connection went silent and was dropped. */
export class ConnectionDroppedError extends Error {
  override readonly name = "ConnectionDroppedError";
  readonly code = "KEYPORTAL_CONNECTION_DROPPED";
}

/**
 * A pg Client whose every query has a deadline. pg's own query_timeout
 * fails the query but keeps the connection, whose reply may never come
 * (a silent peer after a failover or partition): every later query on it,
 * and every mutation queued behind them, would wait forever. Here the
 * connection is destroyed instead; the query fails, and the pool replaces
 * the connection on release (it is no longer queryable).
 */
export function boundedClientClass(deadlineMs: number): PgClientClass {
  class BoundedClient extends pg.Client {
    constructor(config?: unknown) {
      super(config);
      // Errors reach the query in flight; a dropped idle connection must not crash the process.
      this.on("error", () => undefined);
    }
  }
  const query = pg.Client.prototype.query;
  BoundedClient.prototype.query = function boundedQuery(this: PgClient, ...args: unknown[]) {
    const result = query.apply(this, args);
    if (result && typeof (result as Promise<unknown>).then === "function") {
      const timer = setTimeout(() => {
        this.connection?.stream?.destroy(new ConnectionDroppedError(`the database did not answer within ${deadlineMs} ms; connection dropped`));
      }, deadlineMs);
      timer.unref();
      (result as Promise<unknown>).then(
        () => clearTimeout(timer),
        () => clearTimeout(timer),
      );
    }
    return result;
  };
  return BoundedClient;
}

/** Pool options (TypeORM's `extra`) that bound every wait on PostgreSQL. */
export function boundedPoolOptions(timeouts: DatabaseTimeouts): Record<string, unknown> {
  return {
    Client: boundedClientClass(timeouts.queryMs + QUERY_GRACE_MS),
    connectionTimeoutMillis: timeouts.connectMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // Server side: a statement, or a transaction left idle by a client that vanished, ends and frees its locks.
    statement_timeout: timeouts.queryMs,
    idle_in_transaction_session_timeout: timeouts.queryMs,
  };
}
