import { GraphQLObjectType, type GraphQLFieldResolver, type GraphQLSchema } from "graphql";
import { getMetadataStorage } from "type-graphql";

/** Resolver instances by class, built by the composition root. */
type Instances = Map<Function, object>;

interface ParamMetadata {
  kind: string;
  index: number;
  propertyName?: string;
  getType?: () => unknown;
}

interface FieldResolverMetadata {
  kind: "internal" | "external";
  target: Function;
  methodName: string;
  params?: ParamMetadata[];
  middlewares?: unknown[];
  roles?: unknown[];
  getObjectType?: () => Function;
}

interface FieldMetadata {
  name: string;
  schemaName: string;
  target: Function;
  middlewares?: unknown[];
  roles?: unknown[];
}

interface ObjectTypeMetadata {
  name: string;
  target: Function;
  fields?: FieldMetadata[];
}

/**
 * type-graphql wraps every field it builds: a property (`@Field() name`) in
 * a resolver that runs the middleware chain around `root[name]`, and a
 * field resolver (`@FieldResolver() organization(@Root() c, @Ctx() ctx)`)
 * in one that also sorts and maps its parameters, through a promise check
 * each, on every call. A page of 50 certificates with nested fields makes
 * some 600 such calls. The project declares no middleware and no
 * authorization on any field (checked here, field by field: one that has
 * them keeps type-graphql's resolver), so a property becomes a plain read
 * and a field resolver that takes only its root and the context a direct
 * call of its method. A root that is not an instance of the parameter's
 * declared class still goes through type-graphql's resolver, which converts
 * it, so every call sees what it saw before. Fields with arguments keep
 * type-graphql's resolver (it converts and validates them).
 */
export function plainResolvers(schema: GraphQLSchema, instances: Instances): GraphQLSchema {
  const storage = getMetadataStorage() as unknown as { objectTypes: ObjectTypeMetadata[]; fieldResolvers: FieldResolverMetadata[] };
  for (const objectType of storage.objectTypes) {
    const type = schema.getType(objectType.name);
    if (!(type instanceof GraphQLObjectType)) continue;
    const fields = type.getFields();
    for (const field of objectType.fields ?? []) {
      const built = fields[field.schemaName];
      if (!built || built.args.length > 0 || (field.middlewares?.length ?? 0) > 0 || (field.roles?.length ?? 0) > 0) continue;
      const resolver = storage.fieldResolvers.find((r) => r.getObjectType?.() === field.target && r.methodName === field.name);
      if (!resolver) {
        const property = field.name;
        built.resolve = (root: Record<string, unknown>) => root[property];
        continue;
      }
      const direct = directCall(resolver, instances, built.resolve);
      if (direct) built.resolve = direct;
    }
  }
  return schema;
}

function directCall(resolver: FieldResolverMetadata, instances: Instances, original: GraphQLFieldResolver<unknown, unknown> | undefined): GraphQLFieldResolver<unknown, unknown> | null {
  if (resolver.kind !== "external" || !original || (resolver.middlewares?.length ?? 0) > 0 || (resolver.roles?.length ?? 0) > 0) return null;
  const params = [...(resolver.params ?? [])].sort((a, b) => a.index - b.index);
  if (!params.every((p, i) => p.index === i && (p.kind === "root" || p.kind === "context") && !p.propertyName)) return null;
  const instance = instances.get(resolver.target) as Record<string, unknown> | undefined;
  const method = instance?.[resolver.methodName];
  if (typeof method !== "function") return null;
  const rootType = params.find((p) => p.kind === "root")?.getType?.();
  const rootClass = typeof rootType === "function" ? rootType : null;
  const kinds = params.map((p) => p.kind);
  return (root, args, context, info) => {
    if (rootClass && !(root instanceof rootClass)) return original(root, args, context, info);
    switch (kinds.length) {
      case 0:
        return method.call(instance);
      case 1:
        return method.call(instance, kinds[0] === "root" ? root : context);
      default:
        return method.apply(
          instance,
          kinds.map((k) => (k === "root" ? root : context)),
        );
    }
  };
}
