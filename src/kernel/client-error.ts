import { isOutage, OUTAGE_RETRY_AFTER_SECONDS } from "./driver.js";
import { DomainError, type ErrorCode, HTTP_STATUS, REASON_HTTP_STATUS, type Reason } from "./errors.js";

/**
 * What a client is told about an error, whatever carries it (a GraphQL
 * error's extensions, a REST route's JSON body, a WebSocket's errors): the
 * one mapping from a DomainError, an outage or anything else.
 */
export interface ClientError {
  code: ErrorCode;
  reason: Reason;
  message: string;
  /** The HTTP status outside GraphQL, and of a GraphQL response refused as a whole. */
  httpStatus: number;
  /** RATE_LIMITED: when to come back (extensions.retryAfterSeconds, the body's retryAfterSeconds). */
  retryAfterSeconds?: number;
  /** Retry-After when the client should wait (a RATE_LIMITED refusal, an outage). */
  headers: Record<string, string>;
  /**
   * refusal: the client's mistake or a rule said no (logged at info, by code and reason: messages may quote input);
   * outage: the database or Redis is away (warn, retryable); internal: a bug (error, with every detail, none to the client).
   */
  kind: "refusal" | "outage" | "internal";
}

export const OUTAGE_MESSAGE = "The service is briefly unavailable; retry shortly.";
export const INTERNAL_MESSAGE = "Internal server error";

/** The HTTP status and headers for a code and reason (REASON_HTTP_STATUS first, then the code's). */
export function httpOf(code: ErrorCode, reason: Reason, retryAfterSeconds?: number): { status: number; headers: Record<string, string> } {
  const status = REASON_HTTP_STATUS[reason] ?? HTTP_STATUS[code];
  const headers: Record<string, string> = {};
  if (status === 503) headers["retry-after"] = String(OUTAGE_RETRY_AFTER_SECONDS);
  if (retryAfterSeconds !== undefined) headers["retry-after"] = String(retryAfterSeconds);
  return { status, headers };
}

export function toClientError(error: unknown): ClientError {
  if (error instanceof DomainError) {
    const { status, headers } = httpOf(error.code, error.reason, error.retryAfterSeconds);
    return {
      code: error.code,
      reason: error.reason,
      message: error.message,
      httpStatus: status,
      ...(error.retryAfterSeconds !== undefined ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
      headers,
      kind: error.reason === "UNAVAILABLE" ? "outage" : "refusal",
    };
  }
  if (isOutage(error)) {
    const { status, headers } = httpOf("INTERNAL_SERVER_ERROR", "UNAVAILABLE");
    return { code: "INTERNAL_SERVER_ERROR", reason: "UNAVAILABLE", message: OUTAGE_MESSAGE, httpStatus: status, headers, kind: "outage" };
  }
  return { code: "INTERNAL_SERVER_ERROR", reason: "INTERNAL", message: INTERNAL_MESSAGE, httpStatus: 500, headers: {}, kind: "internal" };
}

/** The JSON body a REST route answers an error with. */
export function restErrorBody(e: ClientError): { error: { code: ErrorCode; reason: Reason; message: string; retryAfterSeconds?: number } } {
  return { error: { code: e.code, reason: e.reason, message: e.message, ...(e.retryAfterSeconds !== undefined ? { retryAfterSeconds: e.retryAfterSeconds } : {}) } };
}
