/**
 * type-graphql wrapped every field in its middleware chain (a property read
 * included) and every field resolver in parameter mapping on each call: the
 * schema's fields without arguments now resolve as plain reads and direct
 * method calls (src/graphql/plain-resolvers.ts), with the same results, and
 * a root that is not of the declared class still goes through type-graphql.
 */
import { GraphQLObjectType, type GraphQLField, type GraphQLResolveInfo } from "graphql";
import { describe, expect, it } from "vitest";
import { Certificate } from "../../src/certificates/certificate.entity.js";
import { CertificateExpiryResolver } from "../../src/certificates/certificate-expiry.resolver.js";
import { buildKeyPortalSchema } from "../../src/graphql/schema.js";
import { ManualClock } from "../../src/kernel/clock.js";

const wrapped = (field: GraphQLField<unknown, unknown>) => /applyMiddlewares|getParams|resolverData/.test(String(field.resolve));
const info = {} as GraphQLResolveInfo;

describe("the schema's resolvers", () => {
  it("should read every property field without type-graphql's wrapper", async () => {
    const schema = await buildKeyPortalSchema();
    const certificate = schema.getType("Certificate") as GraphQLObjectType;
    expect(wrapped(certificate.getFields().serialNumber!)).toBe(false);
    // Every object type's property fields, across the schema: only field resolvers (whose instances this build lacks) and fields with arguments keep it.
    const stillWrapped: string[] = [];
    for (const type of Object.values(schema.getTypeMap())) {
      if (!(type instanceof GraphQLObjectType) || type.name.startsWith("__") || ["Query", "Mutation", "Subscription"].includes(type.name)) continue;
      for (const field of Object.values(type.getFields())) if (wrapped(field) && field.args.length === 0) stillWrapped.push(`${type.name}.${field.name}`);
    }
    expect(stillWrapped).toContain("Certificate.daysUntilExpiry");
    expect(stillWrapped).not.toContain("Certificate.notAfter");
    expect(stillWrapped).not.toContain("Organization.name");
  });

  it("should call a field resolver's method directly, and convert a root of another class as type-graphql does", async () => {
    const clock = new ManualClock(new Date("2026-12-01T00:00:00.000Z"));
    const schema = await buildKeyPortalSchema(new Map<Function, object>([[CertificateExpiryResolver, new CertificateExpiryResolver(clock)]]));
    const field = (schema.getType("Certificate") as GraphQLObjectType).getFields().daysUntilExpiry!;
    expect(wrapped(field)).toBe(false);
    const entity = Object.assign(new Certificate(), { notAfter: new Date("2026-12-31T12:00:00.000Z") });
    expect(field.resolve!(entity, {}, {}, info)).toBe(30);
    // A plain object is no Certificate: type-graphql's own resolver converts it first, and answers the same.
    expect(field.resolve!({ notAfter: new Date("2026-12-31T12:00:00.000Z") }, {}, {}, info)).toBe(30);
  });
});
