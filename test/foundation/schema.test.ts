import "reflect-metadata";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { buildKeyPortalSchema, printKeyPortalSchema } from "../../src/graphql/schema.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("schema.graphql", () => {
  it("should equal the schema built from the code", async () => {
    const built = printKeyPortalSchema(await buildKeyPortalSchema());
    const committed = readFileSync(path.join(ROOT, "schema.graphql"), "utf8");
    // One clear instruction instead of a thousand-line diff.
    if (built !== committed) expect.fail("schema.graphql is stale: run npm run schema");
    expect(built).toBe(committed);
  });
});
