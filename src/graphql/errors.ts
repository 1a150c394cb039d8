import type { GraphQLFormattedError } from "graphql";
import { GraphQLError } from "graphql";
import type { Logger } from "pino";
import { httpOf, toClientError } from "../kernel/client-error.js";
import { DomainError, type ErrorCode, isReason, type Reason, REASON_HTTP_STATUS } from "../kernel/errors.js";

/** Codes that GraphQL itself and Apollo produce for malformed requests; they carry no internals. */
const REQUEST_ERROR_CODES = new Set(["GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT", "BAD_REQUEST", "PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED", "OPERATION_RESOLUTION_FAILURE"]);

function originalOf(error: unknown): unknown {
  let current = error;
  while (current instanceof GraphQLError && current.originalError) current = current.originalError;
  return current;
}

/**
 * GraphQL's side of the one mapping (kernel/client-error.ts): a request error
 * of GraphQL or Apollo themselves becomes BAD_USER_INPUT with a reason; the
 * rest (a DomainError, an outage, anything else) is what toClientError says,
 * logged here by its kind.
 */
export function createErrorFormatter(logger: Logger) {
  // The client's mistakes (and refusals) are logged at info, by code and reason only: their messages may quote input.
  const clientError = (result: GraphQLFormattedError): GraphQLFormattedError => {
    logger.info({ code: result.extensions?.code, reason: result.extensions?.reason }, "request refused");
    return result;
  };
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = originalOf(error);
    if (original instanceof GraphQLError) {
      // Raised by GraphQL or Apollo themselves (parse, validation, variable coercion) or by our limits.
      const code = formatted.extensions?.code;
      if (typeof code === "string" && typeof formatted.extensions?.reason === "string") {
        // `http` only tells Apollo the status; it is not part of the error (graphql-ws would send it as is).
        const { http: _http, ...extensions } = formatted.extensions;
        return clientError({ ...formatted, extensions });
      }
      // Over graphql-ws, parse and validation errors come straight from graphql-js: no code, no path.
      const fromGraphqlItself = code === undefined && !formatted.path && !original.originalError;
      if (fromGraphqlItself || (typeof code === "string" && REQUEST_ERROR_CODES.has(code))) {
        return clientError({
          message: formatted.message,
          locations: formatted.locations,
          path: formatted.path,
          extensions: { code: "BAD_USER_INPUT", reason: requestErrorReason(code, formatted.message) },
        });
      }
    }
    const mapped = toClientError(original);
    const extensions = {
      code: mapped.code,
      reason: mapped.reason,
      ...(mapped.retryAfterSeconds !== undefined ? { retryAfterSeconds: mapped.retryAfterSeconds } : {}),
    };
    if (mapped.kind === "internal") {
      logger.error({ err: original, message: formatted.message, path: formatted.path }, "unexpected error");
      return { message: mapped.message, path: formatted.path, extensions };
    }
    if (!(original instanceof DomainError)) {
      // Not a bug: the database or Redis is away. Retryable, and logged without the driver's details reaching the client.
      logger.warn({ err: { message: (original as Error).message }, path: formatted.path }, "request failed: database or redis unavailable");
      return { message: mapped.message, path: formatted.path, extensions };
    }
    return clientError({ message: mapped.message, locations: formatted.locations, path: formatted.path, extensions });
  };
}

function requestErrorReason(code: unknown, message: string): string {
  if (code === "GRAPHQL_PARSE_FAILED" || /^Syntax Error/.test(message)) {
    return /more tha[nt] \d+ tokens/.test(message) ? "QUERY_TOO_COMPLEX" : "INVALID_QUERY";
  }
  // graphql-js gives up validating a document with too many overlapping fields to compare.
  if (message === "Validation aborted.") return "QUERY_TOO_COMPLEX";
  // Apollo's own variable coercion (BAD_USER_INPUT without a reason): `Variable "$x" got invalid value ...`.
  if (/^Variable "\$/.test(message)) return "INVALID_VARIABLES";
  return "INVALID_REQUEST";
}

/**
 * For errors created outside resolvers (limits, quotas, plugins) that must
 * keep their code. Apollo answers an error thrown before execution with HTTP
 * 500 unless told otherwise: a client's mistake is a 4xx (HTTP_STATUS), and a
 * RATE_LIMITED refusal says when to come back.
 */
export function requestError(code: ErrorCode, reason: Reason, message: string, retryAfterSeconds?: number): GraphQLError {
  const { status, headers } = httpOf(code, reason, retryAfterSeconds);
  const entries = Object.entries(headers);
  return new GraphQLError(message, {
    extensions: {
      code,
      reason,
      ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      http: { status, ...(entries.length > 0 ? { headers: new Map(entries) } : {}) },
    },
  });
}

/** A DomainError as a request error (refused before execution, with its HTTP status). */
export function asRequestError(error: DomainError): GraphQLError {
  return requestError(error.code, error.reason, error.message, error.retryAfterSeconds);
}

/**
 * The HTTP status and headers a response with these (formatted) errors
 * should have when a reason calls for one (REASON_HTTP_STATUS): an outage is
 * 503 with Retry-After. Undefined: leave the status as it is.
 */
export function httpForErrorReasons(errors: readonly GraphQLFormattedError[] | undefined): { status: number; headers: Record<string, string> } | undefined {
  for (const error of errors ?? []) {
    const reason = error.extensions?.reason;
    const code = error.extensions?.code;
    if (!isReason(reason) || REASON_HTTP_STATUS[reason] === undefined) continue;
    const { status, headers } = httpOf(typeof code === "string" ? (code as ErrorCode) : "INTERNAL_SERVER_ERROR", reason);
    return { status, headers };
  }
  return undefined;
}
