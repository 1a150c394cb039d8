import path from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain ESM script without type declarations
import { enginesOutside } from "../../scripts/check-engines.mjs";

describe("engines", () => {
  it("should have no installed package that declares a Node engine outside the project's engines.node", () => {
    const bad = enginesOutside(path.resolve(import.meta.dirname, "../..")) as Array<{ name: string; version: string; node: string }>;
    expect(bad.map((b) => `${b.name}@${b.version} wants node ${b.node}`)).toEqual([]);
  });
});
