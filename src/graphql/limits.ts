import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  getNamedType,
  getNullableType,
  getVariableValues,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  isInterfaceType,
  isListType,
  isObjectType,
  Kind,
  type OperationDefinitionNode,
  SchemaMetaFieldDef,
  type SelectionSetNode,
  TypeMetaFieldDef,
} from "graphql";
import { requestError } from "./errors.js";

export interface QueryLimits {
  maxDepth: number;
  /** Cost budget of one operation with a valid token. */
  maxComplexity: number;
  /** Cost budget of one operation without a token: a small share of maxComplexity. */
  anonymousMaxComplexity: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = { maxDepth: 12, maxComplexity: 20_000, anonymousMaxComplexity: 5_000 };

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

/** `first` of a field: a literal, a variable's value, or the argument's default. */
function firstOf(field: GraphQLField<unknown, unknown>, node: FieldNode, variables: Record<string, unknown>): number | undefined {
  const arg = node.arguments?.find((a) => a.name.value === "first");
  let value: unknown;
  if (arg?.value.kind === Kind.INT) value = Number(arg.value.value);
  else if (arg?.value.kind === Kind.VARIABLE) value = variables[arg.value.name.value];
  else if (!arg) value = field.args.find((a) => a.name === "first")?.defaultValue;
  // Not an Int (2^40...): variable coercion refuses it as INVALID_VARIABLES; the cost counts the default page.
  return Number.isInteger(value) && Math.abs(value as number) <= 2 ** 31 - 1 ? Math.max(0, value as number) : undefined;
}

/**
 * Cost follows the size of the answer: a field costs 1 (or its FIELD_COSTS
 * weight) plus its children, times the number of items for a list: `first`
 * where given, a fixed size otherwise (introspection's lists included).
 * `nodes`/`edges` of a connection count once: the connection field already
 * multiplied by its page size.
 */
function fieldCost(parent: GraphQLNamedType, field: GraphQLField<unknown, unknown>, first: number | undefined, childCost: number): number {
  const key = `${parent.name}.${field.name}`;
  const own = FIELD_COSTS[key] ?? 1;
  // A type reference's ofType chain is nested 8 deep by GraphiQL but is null after at most 3 links (T!, [T], [T!]!):
  // each link counts half of the one before, so the chain weighs what it returns, not what it asks.
  if (key === "__Type.ofType") return own + childCost / 2;
  if (first !== undefined) return own + first * childCost;
  if (!isListType(getNullableType(field.type))) {
    return getNamedType(field.type).name.endsWith("Connection") ? own + DEFAULT_PAGE_SIZE * childCost : own + childCost;
  }
  if (parent.name.endsWith("Connection")) return own + childCost;
  return own + (INTROSPECTION_LIST_SIZE[key] ?? UNBOUNDED_LIST_SIZE) * Math.max(1, childCost);
}

/**
 * The cost of an operation, in one pass over its selections (fragments
 * counted once each, then reused), so that refusing a costly document is
 * cheap: this runs before GraphQL's validation, whose work grows with the
 * document. Unknown fields and fragment cycles cost nothing here; validation
 * reports them. Inline fragments add up (an over-estimate for unions).
 */
export function operationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown>,
  stopAbove = Infinity,
): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const def of document.definitions) if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
  const fragmentCosts = new Map<string, number>();
  const inProgress = new Set<string>();
  let visited = 0;
  const walk = (selectionSet: SelectionSetNode, parent: GraphQLNamedType, root = false): number => {
    let total = 0;
    for (const selection of selectionSet.selections) {
      if (root && total > stopAbove) return total; // over the budget already: the rest of a 500-alias document is not read
      if (++visited > MAX_QUERY_NODES) {
        throw requestError("BAD_USER_INPUT", "QUERY_TOO_COMPLEX", `query has more than ${MAX_QUERY_NODES} selections`);
      }
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name === "__typename") {
          total += 1;
          continue;
        }
        const field =
          name === SchemaMetaFieldDef.name
            ? SchemaMetaFieldDef
            : name === TypeMetaFieldDef.name
              ? TypeMetaFieldDef
              : isObjectType(parent) || isInterfaceType(parent)
                ? parent.getFields()[name]
                : undefined;
        if (!field) continue;
        const child = selection.selectionSet ? walk(selection.selectionSet, getNamedType(field.type)) : 0;
        total += fieldCost(parent, field, firstOf(field, selection, variables), child);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent;
        if (type) total += walk(selection.selectionSet, type);
      } else {
        const name = selection.name.value;
        const known = fragmentCosts.get(name);
        if (known !== undefined) {
          total += known;
          continue;
        }
        const fragment = fragments.get(name);
        const type = fragment && schema.getType(fragment.typeCondition.name.value);
        if (!fragment || !type || inProgress.has(name)) continue;
        inProgress.add(name);
        const cost = walk(fragment.selectionSet, type);
        inProgress.delete(name);
        fragmentCosts.set(name, cost);
        total += cost;
      }
    }
    return total;
  };
  const root = operation.operation === "query" ? schema.getQueryType() : operation.operation === "mutation" ? schema.getMutationType() : schema.getSubscriptionType();
  return root ? Math.ceil(walk(operation.selectionSet, root, true)) : 0;
}

/** Depth in fields; each fragment's depth is computed once (a chain of fragments spread twice each stays linear). */
function depthOf(
  selectionSet: SelectionSetNode | undefined,
  fragments: Map<string, FragmentDefinitionNode>,
  seen: Set<string>,
  memo = new Map<string, number>(),
): number {
  if (!selectionSet) return 0;
  let max = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue; // introspection is bounded by its cost, not its depth
      max = Math.max(max, 1 + depthOf(selection.selectionSet, fragments, seen, memo));
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      max = Math.max(max, depthOf(selection.selectionSet, fragments, seen, memo));
    } else {
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (!fragment || seen.has(name)) continue;
      if (!memo.has(name)) {
        seen.add(name);
        memo.set(name, depthOf(fragment.selectionSet, fragments, seen, memo));
        seen.delete(name);
      }
      max = Math.max(max, memo.get(name)!);
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
 * QUERY_TOO_COMPLEX). Cheap enough to run before validation; returns the cost.
 */
export function enforceQueryCost(
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
  const budget = opts.anonymous ? limits.anonymousMaxComplexity : limits.maxComplexity;
  const cost = operationCost(schema, document, operation, variables ?? {}, budget);
  if (cost > budget) {
    throw requestError(
      "BAD_USER_INPUT",
      "QUERY_TOO_COMPLEX",
      `query complexity ${cost} exceeds the limit of ${budget}${opts.anonymous ? " for requests without a token" : ""}`,
    );
  }
  return cost;
}

/** Refuses variables that do not fit their declared types (BAD_USER_INPUT / INVALID_VARIABLES), before execution. */
export function enforceVariableTypes(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
): void {
  const operation = selectedOperation(document, operationName);
  if (!operation) return;
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {}, { maxErrors: 1 });
  if (coerced.errors) throw requestError("BAD_USER_INPUT", "INVALID_VARIABLES", coerced.errors[0]!.message);
}

/** Both checks, for a validated document: its cost and depth, then its variables. */
export function enforceQueryLimits(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
  opts: { limits?: QueryLimits; anonymous?: boolean } = {},
): number {
  const cost = enforceQueryCost(schema, document, operationName, variables, opts);
  enforceVariableTypes(schema, document, operationName, variables);
  return cost;
}
