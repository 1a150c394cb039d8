import {
  type DocumentNode,
  type FragmentDefinitionNode,
  getNamedType,
  getNullableType,
  getVariableValues,
  GraphQLError,
  type GraphQLSchema,
  isListType,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from "graphql";
import { type ComplexityEstimator, getComplexity } from "graphql-query-complexity";
import { requestError } from "./errors.js";

export interface QueryLimits {
  maxDepth: number;
  /** Cost budget of one operation with a valid token. */
  maxComplexity: number;
  /** Cost budget of one operation without a token: a small share of maxComplexity. */
  anonymousMaxComplexity: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = { maxDepth: 12, maxComplexity: 20_000, anonymousMaxComplexity: 2_000 };

/**
 * Checked on the raw text and JSON before anything recursive (parser,
 * validation, variable coercion, cost) sees them: those walk the tree
 * recursively and a deep enough input overflows the stack.
 */
export const MAX_QUERY_NESTING = 64;
export const MAX_VARIABLES_NESTING = 32;
/** Lexical tokens in one document (graphql-js parse option); GraphiQL's introspection query has about 300. */
export const MAX_QUERY_TOKENS = 20_000;
/** Selections the cost walk visits before giving up (each alias and fragment use counts). */
const MAX_QUERY_NODES = 10_000;

/** A list without `first`: our own unbounded lists (organizations, officers...). */
const UNBOUNDED_LIST_SIZE = 10;
/** A connection asked for without `first` and with no default. */
const DEFAULT_PAGE_SIZE = 50;
/**
 * Introspection's lists, sized like this schema (about 100 types, a handful
 * of fields and arguments each on average), so that one full introspection
 * (GraphiQL's) fits a token's budget and hundreds of aliased copies do not.
 */
const INTROSPECTION_LIST_SIZE: Record<string, number> = {
  "__Schema.types": 60,
  "__Schema.directives": 4,
  "__Type.fields": 6,
  "__Type.inputFields": 4,
  "__Type.enumValues": 6,
  "__Type.interfaces": 1,
  "__Type.possibleTypes": 1,
  "__Field.args": 1,
  "__Directive.args": 2,
  "__Directive.locations": 1,
};
/** Fields whose value is costly to produce (PEM and PKCS#7 encodings, chains): they weigh more than 1. */
const FIELD_COSTS: Record<string, number> = {
  "Certificate.pem": 5,
  "Certificate.derBase64": 5,
  "Certificate.chainPem": 10,
  "Certificate.pkcs7Base64": 10,
  "KmsCertificate.pem": 5,
  "KmsCertificate.chainPem": 10,
};

/**
 * Cost follows the size of the answer: a field costs 1 (or its FIELD_COSTS
 * weight) plus its children, times the number of items for a list: `first`
 * where given, a fixed size otherwise (introspection's lists included).
 * `nodes`/`edges` of a connection count once: the connection field already
 * multiplied by its page size.
 */
const sizeEstimator: ComplexityEstimator = ({ type, field, args, childComplexity }) => {
  const key = `${type.name}.${field.name}`;
  const own = FIELD_COSTS[key] ?? 1;
  // A type reference's ofType chain is nested 8 deep by GraphiQL but is null after at most 3 links (T!, [T], [T!]!):
  // each link counts half of the one before, so the chain weighs what it returns, not what it asks.
  if (key === "__Type.ofType") return own + childComplexity / 2;
  const first = typeof args.first === "number" ? Math.max(0, args.first) : undefined;
  if (first !== undefined) return own + first * childComplexity;
  const returns = getNullableType(field.type);
  if (!isListType(returns)) {
    const named = getNamedType(field.type);
    return named.name.endsWith("Connection") ? own + DEFAULT_PAGE_SIZE * childComplexity : own + childComplexity;
  }
  if (type.name.endsWith("Connection")) return own + childComplexity;
  const size = INTROSPECTION_LIST_SIZE[key] ?? UNBOUNDED_LIST_SIZE;
  return own + size * Math.max(1, childComplexity);
};

function depthOf(selectionSet: SelectionSetNode | undefined, fragments: Map<string, FragmentDefinitionNode>, seen: Set<string>): number {
  if (!selectionSet) return 0;
  let max = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue; // introspection is bounded by its cost, not its depth
      max = Math.max(max, 1 + depthOf(selection.selectionSet, fragments, seen));
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      max = Math.max(max, depthOf(selection.selectionSet, fragments, seen));
    } else {
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (!fragment || seen.has(name)) continue;
      max = Math.max(max, depthOf(fragment.selectionSet, fragments, new Set([...seen, name])));
    }
  }
  return max;
}

/**
 * The deepest nesting of `{`, `[` and `(` in a GraphQL source, outside
 * strings and comments; one linear pass, no recursion.
 */
export function sourceNesting(source: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === 0x23 /* # */) {
      while (i < source.length && source[i] !== "\n" && source[i] !== "\r") i++;
    } else if (c === 0x22 /* " */) {
      if (source.startsWith('"""', i)) {
        const end = source.indexOf('"""', i + 3);
        i = end === -1 ? source.length : end + 2;
      } else {
        for (i++; i < source.length && source[i] !== '"' && source[i] !== "\n"; i++) if (source[i] === "\\") i++;
      }
    } else if (c === 0x7b || c === 0x5b || c === 0x28) {
      depth++;
      if (depth > max) max = depth;
    } else if (c === 0x7d || c === 0x5d || c === 0x29) {
      depth = Math.max(0, depth - 1);
    }
  }
  return max;
}

/** The nesting depth of a JSON value, with an explicit stack (a 100k-deep value must not overflow it). */
export function valueNesting(value: unknown, stopAt: number): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (current === null || typeof current !== "object") continue;
    if (depth + 1 > max) max = depth + 1;
    if (max > stopAt) return max;
    for (const child of Array.isArray(current) ? current : Object.values(current)) stack.push([child, depth + 1]);
  }
  return max;
}

/** Refuses, before parsing, a document or variables nested deeper than anything recursive may safely walk. */
export function enforceNestingLimits(query: unknown, variables: unknown): void {
  if (typeof query === "string") {
    const nesting = sourceNesting(query);
    if (nesting > MAX_QUERY_NESTING) {
      throw requestError("BAD_USER_INPUT", "QUERY_TOO_COMPLEX", `query nesting ${nesting} exceeds the limit of ${MAX_QUERY_NESTING}`);
    }
  }
  if (variables !== undefined && variables !== null) {
    if (valueNesting(variables, MAX_VARIABLES_NESTING) > MAX_VARIABLES_NESTING) {
      throw requestError("BAD_USER_INPUT", "INVALID_VARIABLES", `variables are nested deeper than ${MAX_VARIABLES_NESTING} levels`);
    }
  }
}

export function selectedOperation(document: DocumentNode, operationName: string | null | undefined): OperationDefinitionNode | undefined {
  const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  return operationName ? operations.find((op) => op.name?.value === operationName) : operations[0];
}

/**
 * Refuses an operation deeper or costlier than the limits (BAD_USER_INPUT /
 * QUERY_TOO_COMPLEX), or whose variables do not fit their types
 * (BAD_USER_INPUT / INVALID_VARIABLES). Returns the operation's cost.
 */
export function enforceQueryLimits(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
  opts: { limits?: QueryLimits; anonymous?: boolean } = {},
): number {
  const limits = opts.limits ?? DEFAULT_QUERY_LIMITS;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const operation = selectedOperation(document, operationName);
  if (!operation) return 0; // GraphQL's own validation reports it
  const depth = depthOf(operation.selectionSet, fragments, new Set());
  if (depth > limits.maxDepth) {
    throw requestError("BAD_USER_INPUT", "QUERY_TOO_COMPLEX", `query depth ${depth} exceeds the limit of ${limits.maxDepth}`);
  }
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {}, { maxErrors: 1 });
  if (coerced.errors) {
    throw requestError("BAD_USER_INPUT", "INVALID_VARIABLES", coerced.errors[0]!.message);
  }
  let complexity: number;
  try {
    complexity = getComplexity({
      schema,
      query: document,
      operationName: operationName ?? undefined,
      variables: variables ?? {},
      maxQueryNodes: MAX_QUERY_NODES,
      estimators: [sizeEstimator],
    });
  } catch (error) {
    if (error instanceof GraphQLError && /maximum allowed number of nodes/.test(error.message)) {
      throw requestError("BAD_USER_INPUT", "QUERY_TOO_COMPLEX", `query has more than ${MAX_QUERY_NODES} selections`);
    }
    if (error instanceof GraphQLError) throw requestError("BAD_USER_INPUT", "INVALID_VARIABLES", error.message);
    throw error;
  }
  complexity = Math.ceil(complexity);
  const budget = opts.anonymous ? limits.anonymousMaxComplexity : limits.maxComplexity;
  if (complexity > budget) {
    throw requestError(
      "BAD_USER_INPUT",
      "QUERY_TOO_COMPLEX",
      `query complexity ${complexity} exceeds the limit of ${budget}${opts.anonymous ? " for requests without a token" : ""}`,
    );
  }
  return complexity;
}
