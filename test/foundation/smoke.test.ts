import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

describe("a started server", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should answer readyz with 200 once migrations are applied", async () => {
    const res = await fetch(`${server.url}/readyz`);
    expect(res.status).toBe(200);
  });

  it("should make an organization key-exchange ready with two active officers", async () => {
    const org = await createOrganization(server, { officerCount: 2 });
    const data = await server.ok<{ organization: { keyExchangeReady: boolean; activeOfficerCount: number } }>(
      `query($id: ID!) { organization(id: $id) { keyExchangeReady activeOfficerCount } }`,
      { id: org.id },
      org.officers[0]!.token,
    );
    expect(data.organization).toEqual({ keyExchangeReady: true, activeOfficerCount: 2 });
  });
});
