/**
 * What driver errors mean, for PostgreSQL, SQLite and Redis alike.
 *
 * Which failures mean "the database (or Redis) is unreachable or not
 * answering right now", as opposed to a bug: those are worth a retry, so
 * clients get INTERNAL_SERVER_ERROR / UNAVAILABLE, HTTP 503 and Retry-After.
 */

/** PostgreSQL SQLSTATEs of a lost or refused connection, a server going down, or a statement/transaction timeout. */
const OUTAGE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "57014", "25P03", "53300"]);
const OUTAGE_ERRNO = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "KEYPORTAL_CONNECTION_DROPPED"]);
const OUTAGE_MESSAGES = [
  /^Connection terminated/,
  /timeout exceeded when trying to connect/,
  /not queryable/,
  /^Query read timeout/,
  /^Connection is closed/, // ioredis
  /Reached the max retries per request limit/, // ioredis
];

/** The seconds a client is told to wait before retrying after an outage (Retry-After). */
export const OUTAGE_RETRY_AFTER_SECONDS = 2;

export function isOutage(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === "object" && !seen.has(current)) {
    seen.add(current);
    const e = current as { code?: unknown; message?: unknown; driverError?: unknown; cause?: unknown; originalError?: unknown };
    if (typeof e.code === "string" && (OUTAGE_ERRNO.has(e.code) || OUTAGE_SQLSTATES.has(e.code) || e.code.startsWith("08"))) return true;
    if (typeof e.message === "string" && OUTAGE_MESSAGES.some((m) => m.test(e.message as string))) return true;
    current = e.driverError ?? e.cause ?? e.originalError;
  }
  return false;
}

/** A unique constraint refused the row (PostgreSQL 23505, SQLite SQLITE_CONSTRAINT). */
export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; driverError?: { code?: string }; message?: string };
  const code = e.driverError?.code ?? e.code;
  return code === "23505" || code === "SQLITE_CONSTRAINT" || /UNIQUE constraint failed/.test(e.message ?? "");
}
