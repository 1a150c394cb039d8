/**
 * The one error vocabulary. Services and pki/ throw DomainError; the GraphQL
 * formatter and the REST handlers map it to the client. Anything else is an
 * internal error and reaches the client without detail.
 */
export type ErrorCode =
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "BAD_USER_INPUT"
  | "CONFLICT"
  | "PRECONDITION_FAILED"
  | "RATE_LIMITED"
  | "INTERNAL_SERVER_ERROR";

export class DomainError extends Error {
  override readonly name = "DomainError";
  constructor(
    readonly code: ErrorCode,
    /** Stable machine-readable reason, SCREAMING_CASE. */
    readonly reason: string,
    message: string,
    /** RATE_LIMITED: when to try again (extensions.retryAfterSeconds, HTTP Retry-After). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const badInput = (reason: string, message: string) => new DomainError("BAD_USER_INPUT", reason, message);
export const notFound = (what: string) => new DomainError("NOT_FOUND", "NOT_FOUND", `${what} not found`);
export const forbidden = (message = "not allowed for this viewer") => new DomainError("FORBIDDEN", "FORBIDDEN", message);
export const conflict = (reason: string, message: string) => new DomainError("CONFLICT", reason, message);
export const unauthenticated = (message = "a valid bearer token is required") =>
  new DomainError("UNAUTHENTICATED", "UNAUTHENTICATED", message);
export const rateLimited = (reason: string, message: string, retryAfterSeconds: number) =>
  new DomainError("RATE_LIMITED", reason, message, Math.max(1, Math.ceil(retryAfterSeconds)));
/** The database or Redis is unreachable or not answering: safe to retry (HTTP 503 with Retry-After). */
export const unavailable = (message = "the service is briefly unavailable; retry shortly") =>
  new DomainError("INTERNAL_SERVER_ERROR", "UNAVAILABLE", message);
export const preconditionFailed = (reason: string, message: string) =>
  new DomainError("PRECONDITION_FAILED", reason, message);

/**
 * The one error-to-HTTP mapping: the status of a DomainError outside GraphQL
 * (downloads, CRL), and of a GraphQL response whose request was refused as a
 * whole (limits, quotas) or that carries one of these codes.
 */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  BAD_USER_INPUT: 400,
  CONFLICT: 409,
  PRECONDITION_FAILED: 412,
  RATE_LIMITED: 429,
  INTERNAL_SERVER_ERROR: 500,
};

/**
 * Codes that decide a GraphQL response's HTTP status even when raised while
 * executing (the rest answer 200 with the error in `errors`).
 */
export const RESPONSE_STATUS_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["RATE_LIMITED"]);
/** Reasons whose HTTP status differs from their code's (one row per reason). */
export const REASON_HTTP_STATUS: Record<string, number> = {
  UNAVAILABLE: 503,
};
