import type { GraphQLFormattedError } from "graphql";
import { GraphQLError } from "graphql";
import type { Logger } from "pino";
import { DomainError, type ErrorCode, HTTP_STATUS } from "../errors.js";

/** Codes that GraphQL itself and Apollo produce for malformed requests; they carry no internals. */
const REQUEST_ERROR_CODES = new Set(["GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT", "BAD_REQUEST", "PERSISTED_QUERY_NOT_FOUND", "PERSISTED_QUERY_NOT_SUPPORTED", "OPERATION_RESOLUTION_FAILURE"]);

function originalOf(error: unknown): unknown {
  let current = error;
  while (current instanceof GraphQLError && current.originalError) current = current.originalError;
  return current;
}

/**
 * The one mapping from errors to what clients see: a DomainError's code and
 * reason; a request error as BAD_USER_INPUT; anything else as
 * INTERNAL_SERVER_ERROR with a fixed message, logged here with its details.
 */
export function createErrorFormatter(logger: Logger) {
  // The client's mistakes (and refusals) are logged at info, by code and reason only: their messages may quote input.
  const clientError = (result: GraphQLFormattedError): GraphQLFormattedError => {
    logger.info({ code: result.extensions?.code, reason: result.extensions?.reason }, "request refused");
    return result;
  };
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = originalOf(error);
    if (original instanceof DomainError) {
      return clientError({
        message: original.message,
        locations: formatted.locations,
        path: formatted.path,
        extensions: {
          code: original.code,
          reason: original.reason,
          ...(original.retryAfterSeconds !== undefined ? { retryAfterSeconds: original.retryAfterSeconds } : {}),
        },
      });
    }
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
    logger.error({ err: original, message: formatted.message, path: formatted.path }, "unexpected error");
    return {
      message: "Internal server error",
      path: formatted.path,
      extensions: { code: "INTERNAL_SERVER_ERROR", reason: "INTERNAL" },
    };
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
export function requestError(code: ErrorCode, reason: string, message: string, retryAfterSeconds?: number): GraphQLError {
  const headers = retryAfterSeconds !== undefined ? new Map([["retry-after", String(retryAfterSeconds)]]) : undefined;
  return new GraphQLError(message, {
    extensions: {
      code,
      reason,
      ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      http: { status: HTTP_STATUS[code], ...(headers ? { headers } : {}) },
    },
  });
}

/** A DomainError as a request error (refused before execution, with its HTTP status). */
export function asRequestError(error: DomainError): GraphQLError {
  return requestError(error.code, error.reason, error.message, error.retryAfterSeconds);
}
