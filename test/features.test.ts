import "reflect-metadata";
import { describe, expect, it } from "vitest";
import { ENTITIES } from "../src/db/entities.js";
import { FEATURES } from "../src/features.js";
import { RESOLVERS } from "../src/graphql/schema.js";

describe("the list of features", () => {
  it("declares every entity the data source maps, each once", () => {
    const declared = FEATURES.flatMap((f) => [...f.entities]);
    expect(new Set(declared).size).toBe(declared.length);
    expect(new Set(declared)).toEqual(new Set(ENTITIES));
  });

  it("is where the schema takes its resolvers from", () => {
    expect(RESOLVERS).toEqual(FEATURES.flatMap((f) => [...f.resolvers]));
    expect(RESOLVERS.length).toBe(14);
    expect(new Set(FEATURES.map((f) => f.name)).size).toBe(FEATURES.length);
  });
});
