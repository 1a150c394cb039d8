import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { auditRows, expectError, freshEmail, REGISTER_OFFICER } from "./helpers.js";

describe("tenancy beyond the top-level fields", () => {
  let server: TestServer;
  let A: TestOrganization;
  let B: TestOrganization;
  let kmsId: string;
  const secondOperatorEmail = "second.operator@kms.example";

  beforeAll(async () => {
    server = await startTestServer();
    A = await createOrganization(server, { officerCount: 2 });
    B = await createOrganization(server, { officerCount: 1 });
    const { me } = await server.ok<{ me: { organization: { id: string } } }>(`{ me { organization { id } } }`);
    kmsId = me.organization.id;
    // A second operator who never acts on A: nothing of theirs is A's business.
    await addOfficer(server, kmsId, secondOperatorEmail);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should not list another organization's officers through a nested Organization.officers", async () => {
    const result = await server.gql<{ auditLog: { nodes: Array<{ seq: number; actor: unknown }> } }>(
      `{ auditLog { nodes { seq actor { email organization { id officers { email } } } } } }`,
      {},
      A.officers[0]!.token,
    );
    expect(JSON.stringify(result)).not.toContain(secondOperatorEmail);
    // The operator acted on A (created it, registered its officers): the KMS organization's officer list is refused.
    expect(result.errors?.length).toBeGreaterThan(0);
    for (const error of result.errors!) {
      expect(error.extensions).toEqual({ code: "FORBIDDEN", reason: "FORBIDDEN" });
      expect(error.path?.slice(-1)).toEqual(["officers"]);
    }
    // Events stay visible; only the refused part is withheld.
    expect(result.data?.auditLog.nodes.length).toBeGreaterThan(0);
  });

  it("should still list the officers of the viewer's own organization and, for operators, of any", async () => {
    const own = await server.ok<{ me: { organization: { officers: Array<{ email: string }> } } }>(
      `{ me { organization { officers { email } } } }`,
      {},
      A.officers[0]!.token,
    );
    expect(own.me.organization.officers.map((o) => o.email).sort()).toEqual(A.officers.map((o) => o.email).sort());
    const all = await server.ok<{ organizations: Array<{ id: string; officers: Array<{ email: string }> }> }>(
      `{ organizations { id officers { email } } }`,
    );
    expect(all.organizations.find((o) => o.id === B.id)?.officers.map((o) => o.email)).toEqual([B.officers[0]!.email]);
    expect(all.organizations.find((o) => o.id === kmsId)?.officers.map((o) => o.email)).toContain(secondOperatorEmail);
  });

  it("should not file another tenant's refused attempt in the target organization's audit log", async () => {
    const intruder = B.officers[0]!;
    const email = freshEmail("intruder");
    expectError(
      await server.gql(REGISTER_OFFICER, { input: { organizationId: A.id, name: "Planted Officer", email } }, intruder.token),
      "NOT_FOUND",
    );
    const event = (await auditRows(server)).at(-1)!;
    expect(event).toMatchObject({ action: "officer.register", outcome: "NOT_FOUND", actorId: intruder.id });
    expect(event.organizationId).not.toBe(A.id);

    const seen = await server.ok<{ auditLog: { nodes: Array<{ seq: number }> } }>(`{ auditLog(first: 500) { nodes { seq } } }`, {}, A.officers[0]!.token);
    expect(seen.auditLog.nodes.map((n) => n.seq)).not.toContain(event.seq);
    const operatorView = await server.ok<{ auditLog: { nodes: Array<{ seq: number; outcome: string }> } }>(`{ auditLog(first: 500) { nodes { seq outcome } } }`);
    expect(operatorView.auditLog.nodes).toContainEqual({ seq: event.seq, outcome: "NOT_FOUND" });
  });

  it("should file an own officer's refused registration in the organization's log", async () => {
    expectError(
      await server.gql(REGISTER_OFFICER, { input: { organizationId: A.id, name: "", email: freshEmail() } }, A.officers[0]!.token),
      "BAD_USER_INPUT",
      "INVALID_NAME",
    );
    const event = (await auditRows(server)).at(-1)!;
    expect(event).toMatchObject({ action: "officer.register", outcome: "BAD_USER_INPUT", organizationId: A.id });
  });
});
