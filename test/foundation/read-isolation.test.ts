import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OrganizationKind } from "../../src/kernel/domain.js";
import { Organization } from "../../src/organizations/organization.entity.js";
import { startTestServer, type TestServer } from "../support/server.js";

describe("reads while a mutation's transaction is open (SQLite)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  const names = async () =>
    (await server.ok<{ organizations: Array<{ name: string }> }>(`{ organizations { name } }`)).organizations.map((o) => o.name);

  it("should not show a row that is not committed yet, nor one whose transaction rolled back", async () => {
    const name = `Uncommitted ${randomUUID().slice(0, 8)}`;
    const seenInside: string[][] = [];
    await expect(
      server.app.db.transaction(async ({ em }) => {
        await em.insert(Organization, { id: randomUUID(), name, kind: OrganizationKind.PARTICIPANT, contactEmail: "pki@x.example", country: "GB", createdAt: server.clock.now() });
        seenInside.push(await names());
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(seenInside[0]).not.toContain(name);
    expect(await names()).not.toContain(name);
  });

  it("should show a row as soon as its transaction has committed", async () => {
    const name = `Committed ${randomUUID().slice(0, 8)}`;
    await server.app.db.transaction(({ em }) =>
      em.insert(Organization, { id: randomUUID(), name, kind: OrganizationKind.PARTICIPANT, contactEmail: "pki@y.example", country: "GB", createdAt: server.clock.now() }),
    );
    expect(await names()).toContain(name);
  });
});
