import {
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from "graphql";
import { type ComplexityEstimator, getComplexity, simpleEstimator } from "graphql-query-complexity";
import { requestError } from "./errors.js";

export interface QueryLimits {
  maxDepth: number;
  maxComplexity: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = { maxDepth: 12, maxComplexity: 20_000 };

/** Lists cost their page size times their children: `first` or a default page of 50. */
const listEstimator: ComplexityEstimator = ({ args, childComplexity }) => {
  if (childComplexity === 0) return undefined;
  const first = typeof args.first === "number" ? args.first : undefined;
  return first !== undefined ? 1 + first * childComplexity : undefined;
};

function depthOf(selectionSet: SelectionSetNode | undefined, fragments: Map<string, FragmentDefinitionNode>, seen: Set<string>): number {
  if (!selectionSet) return 0;
  let max = 0;
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue; // introspection stays free for GraphiQL
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

/** Refuses an operation deeper or costlier than the limits, with BAD_USER_INPUT / QUERY_TOO_COMPLEX. */
export function enforceQueryLimits(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
  limits: QueryLimits = DEFAULT_QUERY_LIMITS,
): void {
  const fragments = new Map<string, FragmentDefinitionNode>();
  const operations: OperationDefinitionNode[] = [];
  for (const def of document.definitions) {
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
    if (def.kind === Kind.OPERATION_DEFINITION) operations.push(def);
  }
  const operation = operationName ? operations.find((op) => op.name?.value === operationName) : operations[0];
  if (!operation) return; // GraphQL's own validation reports it
  const depth = depthOf(operation.selectionSet, fragments, new Set());
  if (depth > limits.maxDepth) {
    throw requestError("BAD_USER_INPUT", "QUERY_TOO_COMPLEX", `query depth ${depth} exceeds the limit of ${limits.maxDepth}`);
  }
  const complexity = getComplexity({
    schema,
    query: document,
    operationName: operationName ?? undefined,
    variables: variables ?? {},
    estimators: [listEstimator, simpleEstimator({ defaultComplexity: 1 })],
  });
  if (complexity > limits.maxComplexity) {
    throw requestError(
      "BAD_USER_INPUT",
      "QUERY_TOO_COMPLEX",
      `query complexity ${complexity} exceeds the limit of ${limits.maxComplexity}`,
    );
  }
}
