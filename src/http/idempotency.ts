/**
 * Idempotency-Key on the two transports: the HTTP header, and
 * extensions.idempotencyKey in a graphql-ws subscribe message. The rules
 * (scope, fingerprint, replay) live in audit/idempotency.ts.
 */
import type { NextFunction, Request, Response } from "express";
import { type DocumentNode, execute, type ExecutionArgs, type GraphQLSchema } from "graphql";
import { type IdempotencySlot, parseIdempotencyKey, requestFingerprint, withIdempotencySlot } from "../audit/idempotency.js";
import { toClientError } from "../kernel/client-error.js";

/** Before Apollo: a malformed key is refused; a good one is held until the viewer is known (bindIdempotencyKey). */
export function idempotencyKeyMiddleware(req: Request, res: Response, next: NextFunction): void {
  let key: string | undefined;
  try {
    key = parseIdempotencyKey(req.get("idempotency-key"));
  } catch (error) {
    const e = toClientError(error);
    res.set(e.headers).status(e.httpStatus).json({ errors: [{ message: e.message, extensions: { code: e.code, reason: e.reason } }] });
    return;
  }
  if (!key) return next();
  const body = (req.body ?? {}) as { query?: unknown; operationName?: unknown; variables?: unknown };
  withIdempotencySlot({ pending: { key, fingerprint: requestFingerprint(body.query, body.operationName, body.variables) } }, () => next());
}

type KeyedArgs = ExecutionArgs & { idempotency?: IdempotencySlot };

/**
 * graphql-ws onSubscribe: the execution arguments of a validated document,
 * complete (graphql-ws runs arguments it is given as they are, without
 * parsing or validating again), carrying the subscribe message's
 * extensions.idempotencyKey when it has one. Throws a DomainError for a
 * malformed key.
 */
export function subscribeExecutionArgs(
  schema: GraphQLSchema,
  document: DocumentNode,
  payload: { query: string; operationName?: string | null; variables?: Record<string, unknown> | null; extensions?: Record<string, unknown> | null },
  officerId: string,
  contextValue: unknown,
): KeyedArgs {
  const key = parseIdempotencyKey(payload.extensions?.idempotencyKey);
  const args: KeyedArgs = { schema, document, operationName: payload.operationName, variableValues: payload.variables, contextValue };
  if (key) args.idempotency = { request: { scope: officerId, key, fingerprint: requestFingerprint(payload.query, payload.operationName, payload.variables), seq: 0 } };
  return args;
}

/** graphql-ws execute: runs keyed arguments with their key in scope. */
export function executeKeyed(args: ExecutionArgs): ReturnType<typeof execute> {
  const slot = (args as KeyedArgs).idempotency;
  return slot ? withIdempotencySlot(slot, () => execute(args)) : execute(args);
}
