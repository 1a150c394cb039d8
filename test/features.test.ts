import "reflect-metadata";
import { describe, expect, it } from "vitest";
import { ENTITIES, FEATURES, ROUTES } from "../src/features.js";
import { RESOLVERS } from "../src/graphql/schema.js";
import { startTestServer } from "./support/server.js";

describe("the list of features", () => {
  it("declares every entity the data source maps, each once", async () => {
    const declared = FEATURES.flatMap((f) => [...f.entities]);
    expect(new Set(declared).size).toBe(declared.length);
    expect(ENTITIES).toEqual(declared);
    expect(ENTITIES.length).toBe(16);
    // The app's data source maps exactly these (the composition root hands them in).
    const server = await startTestServer();
    try {
      expect(new Set(server.app.db.dataSource.entityMetadatas.map((m) => m.target))).toEqual(new Set(declared));
    } finally {
      await server.close();
    }
  }, 60_000);

  it("is where the schema takes its resolvers from", () => {
    expect(RESOLVERS).toEqual(FEATURES.flatMap((f) => [...f.resolvers]));
    expect(RESOLVERS.length).toBe(14);
    expect(new Set(FEATURES.map((f) => f.name)).size).toBe(FEATURES.length);
  });

  it("is where the HTTP server takes its REST routes from", () => {
    expect(ROUTES).toEqual(FEATURES.flatMap((f) => [...(f.routes ?? [])]));
    expect(new Set(ROUTES).size).toBe(ROUTES.length);
    expect(ROUTES.map((r) => r.name)).toEqual(["certificateDownloadRoutes", "crlRoutes", "caRoutes", "ocspRoutes", "kmsCertificateRoutes"]);
  });
});
