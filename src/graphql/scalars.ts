import { GraphQLScalarType, Kind } from "graphql";

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function parse(value: unknown): Date {
  if (typeof value !== "string" || !ISO_INSTANT.test(value)) throw new TypeError("DateTime must be an ISO-8601 instant");
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new TypeError("DateTime must be an ISO-8601 instant");
  return date;
}

export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: "DateTime",
  description: "An ISO-8601 instant in UTC, e.g. 2026-11-28T07:51:39.000Z.",
  serialize(value) {
    if (value instanceof Date) return value.toISOString();
    if (typeof value === "string") return parse(value).toISOString();
    throw new TypeError("DateTime cannot represent this value");
  },
  parseValue: parse,
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw new TypeError("DateTime must be a string");
    return parse(ast.value);
  },
});
