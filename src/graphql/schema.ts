import { createPubSub } from "@graphql-yoga/subscription";
import { type GraphQLSchema, lexicographicSortSchema, printSchema } from "graphql";
import { buildSchema, type NonEmptyArray } from "type-graphql";
import { FEATURES } from "../features.js";
import type { Context } from "./context.js";
import { applyDescriptions } from "./descriptions.js";
import { plainResolvers } from "./plain-resolvers.js";
import { registerEnums } from "./enums.js";
import { DateTimeScalar } from "./scalars.js";

/** Every resolver class, from each feature's declaration (src/features.ts). */
export const RESOLVERS = FEATURES.flatMap((feature) => [...feature.resolvers]) as NonEmptyArray<Function>;

/** Resolver instances by class, built by the composition root (constructor injection). */
export type ResolverInstances = Map<Function, object>;

export async function buildKeyPortalSchema(instances: ResolverInstances = new Map()): Promise<GraphQLSchema> {
  registerEnums();
  const schema = await buildSchema({
    resolvers: RESOLVERS,
    scalarsMap: [{ type: Date, scalar: DateTimeScalar }],
    validate: false,
    emitSchemaFile: false,
    // type-graphql insists on a PubSub once there is a subscription; Subscription.notifications brings its own
    // async iterator (notifications/dispatcher.ts), so this one carries nothing.
    pubSub: createPubSub(),
    container: {
      get(someClass: Function) {
        const instance = instances.get(someClass);
        if (!instance) throw new Error(`no instance registered for ${someClass.name}`);
        return instance;
      },
    },
  });
  return applyDescriptions(plainResolvers(resolveSubscriptionEvents(schema), instances));
}

/**
 * A subscription field resolves each event to the event itself, in the
 * subscription's context, which lives as long as the subscription: its
 * loaders first forget what earlier events loaded, so that each event's
 * nested fields read current data. A plain function instead of
 * type-graphql's resolver, which for every event of every subscriber would
 * convert and validate again (a promise per argument) the arguments checked
 * once at subscribe: across thousands of subscribers of one event that is a
 * fifth of the fan-out's allocations. The project declares no type-graphql
 * middleware or authorization, which that resolver would otherwise run.
 */
function resolveSubscriptionEvents(schema: GraphQLSchema): GraphQLSchema {
  for (const field of Object.values(schema.getSubscriptionType()?.getFields() ?? {})) {
    field.resolve = (event: unknown, _args: unknown, context: Context) => {
      context.loaders.clearAll();
      return event;
    };
  }
  return schema;
}

/** The SDL committed as schema.graphql: sorted so that it only changes when the API does. */
export function printKeyPortalSchema(schema: GraphQLSchema): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
