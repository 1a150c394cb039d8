import type { GraphQLFormattedError } from "graphql";
import { GraphQLError } from "graphql";
import type { Logger } from "pino";
import { DomainError } from "../errors.js";

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
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = originalOf(error);
    if (original instanceof DomainError) {
      return {
        message: original.message,
        locations: formatted.locations,
        path: formatted.path,
        extensions: { ...original.extensions, code: original.code, reason: original.reason },
      };
    }
    if (original instanceof GraphQLError) {
      // Raised by GraphQL or Apollo themselves (parse, validation, variable coercion) or by our limits.
      const code = formatted.extensions?.code;
      if (typeof code === "string" && typeof formatted.extensions?.reason === "string") {
        // `http` only tells Apollo the status; it is not part of the error (graphql-ws would send it as is).
        const { http: _http, ...extensions } = formatted.extensions;
        return { ...formatted, extensions };
      }
      // Over graphql-ws, parse and validation errors come straight from graphql-js: no code, no path.
      const fromGraphqlItself = code === undefined && !formatted.path && !original.originalError;
      if (fromGraphqlItself || (typeof code === "string" && REQUEST_ERROR_CODES.has(code))) {
        return {
          message: formatted.message,
          locations: formatted.locations,
          path: formatted.path,
          extensions: { code: "BAD_USER_INPUT", reason: code === "GRAPHQL_PARSE_FAILED" || /^Syntax Error/.test(formatted.message) ? "INVALID_QUERY" : "INVALID_REQUEST" },
        };
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

const REQUEST_ERROR_STATUS = { BAD_USER_INPUT: 400, UNAUTHENTICATED: 401 } as const;

/**
 * For errors created outside resolvers (limits, plugins) that must keep their
 * code. Apollo answers an error thrown before execution with HTTP 500 unless
 * told otherwise: a client's mistake is a 4xx.
 */
export function requestError(code: "BAD_USER_INPUT" | "UNAUTHENTICATED", reason: string, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code, reason, http: { status: REQUEST_ERROR_STATUS[code] } } });
}
