import "reflect-metadata";
import { type GraphQLSchema, isEnumType, isInputObjectType, isInterfaceType, isObjectType, isScalarType, isUnionType } from "graphql";
import { describe, expect, it } from "vitest";
import { buildKeyPortalSchema } from "../../src/graphql/schema.js";

/** Every type, field, argument, input field and enum value of the emitted schema without a description, as Type.field(arg). */
export function undocumented(schema: GraphQLSchema): string[] {
  const missing: string[] = [];
  const has = (d: string | null | undefined) => typeof d === "string" && d.trim().length >= 8;
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.name.startsWith("__")) continue;
    // Built-in scalars (String, Int...) are documented by the GraphQL spec.
    if (isScalarType(type) && ["String", "Int", "Float", "Boolean", "ID"].includes(type.name)) continue;
    const rootType = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].includes(type as never);
    if (!rootType && !has(type.description)) missing.push(type.name);
    if (isObjectType(type) || isInterfaceType(type)) {
      for (const field of Object.values(type.getFields())) {
        if (!has(field.description)) missing.push(`${type.name}.${field.name}`);
        for (const arg of field.args) if (!has(arg.description)) missing.push(`${type.name}.${field.name}(${arg.name})`);
      }
    } else if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) if (!has(field.description)) missing.push(`${type.name}.${field.name}`);
    } else if (isEnumType(type)) {
      for (const value of type.getValues()) if (!has(value.description)) missing.push(`${type.name}.${value.name}`);
    } else if (isUnionType(type)) {
      // the type's own description is checked above
    }
  }
  return missing;
}

describe("the schema describes itself", () => {
  it("should have a description on every type, field, argument, input field and enum value", async () => {
    const missing = undocumented(await buildKeyPortalSchema());
    expect(missing, `${missing.length} undocumented schema elements`).toEqual([]);
  });
});
