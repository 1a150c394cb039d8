/**
 * The hot reads (loaders' lookups by id, list pages) map rows themselves
 * (src/db/rows.ts), on SQLite from one packed JSON array per row: every
 * entity they read must come out exactly as TypeORM's own find() gives it,
 * same class, same values, same types (dates, booleans, nulls, JSON text,
 * bigints), on both databases.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EntityMetadata, In } from "typeorm";
import { entitiesOf, EntityRows } from "../../src/db/rows.js";
import { available } from "../support/deps.js";
import { createOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { issueMtf } from "./helpers.js";

const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("entities read by EntityRows on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;

    beforeAll(async () => {
      server = await startTestServer({ db });
      const org = await createOrganization(server, { country: "GB" });
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(await issueMtf(server, org, `Rows ${i}`, { kind: i % 2 ? "SIGNING" : "MTLS_CLIENT" }));
      // Nullable columns filled in: a revoked certificate.
      await server.ok(`mutation($id: ID!) { revokeCertificate(certificateId: $id, reason: SUPERSEDED) { id } }`, { id: ids[0] });
      // Each comparison reads the same rows twice: no background worker may change them in between (the mail
      // worker claiming and sending a delivery did, once in CI). Notifications get their positions first.
      const { sequencer, dispatcher, emailWorker, expiryScanner } = server.app.services;
      await sequencer.flush();
      for (const worker of [dispatcher, expiryScanner, emailWorker, sequencer]) await worker.stop();
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    const metadatas = (): EntityMetadata[] => server.app.db.readDataSource.entityMetadatas;

    it("should map every entity with an id as TypeORM's find does, by id", async () => {
      let compared = 0;
      for (const metadata of metadatas()) {
        if (!metadata.primaryColumns.some((c) => c.propertyName === "id")) continue;
        const theirs = await server.app.db.manager.find(metadata.target, { take: 50 });
        if (theirs.length === 0) continue;
        const ids = theirs.map((row) => (row as { id: string | number }).id);
        const mine = await server.app.db.findByIds(metadata.target as never, ids);
        const byId = (a: { id: string | number }, b: { id: string | number }) => (String(a.id) < String(b.id) ? -1 : 1);
        const expected = (await server.app.db.manager.find(metadata.target, { where: { id: In(ids) } as never })) as Array<{ id: string | number }>;
        expect(mine.sort(byId), metadata.name).toEqual(expected.sort(byId));
        for (const row of mine) expect(Object.getPrototypeOf(row), metadata.name).toBe((metadata.target as { prototype: object }).prototype);
        compared += mine.length;
      }
      // Organizations, officers, tokens, CSRs, certificates, notifications, audit events at least.
      expect(compared).toBeGreaterThan(20);
    });

    it("should read a query builder's page as its getMany does, order and all, for every entity", async () => {
      for (const metadata of metadatas()) {
        const key = metadata.primaryColumns[0]!.propertyName;
        const page = () =>
          server.app.db.manager
            .getRepository(metadata.target)
            .createQueryBuilder("x")
            .orderBy(`x.${key}`, "DESC")
            .limit(7);
        expect(await entitiesOf(page()), metadata.name).toEqual(await page().getMany());
      }
    });

    it("should take every entity, and refuse a query builder that selects anything but one alias's columns", async () => {
      await expect(entitiesOf(server.app.db.manager.getRepository(metadatas()[0]!.target).createQueryBuilder("x").select("COUNT(*)", "n"))).rejects.toThrow(/one alias/);
      for (const metadata of metadatas()) expect(() => EntityRows.of(server.app.db.readDataSource, metadata.target)).not.toThrow();
    });
  });
});
