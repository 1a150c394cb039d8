import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { APPROVE, requestDelegation, REVOKE_DELEGATION } from "./helpers.js";
import { notificationIdWhere } from "./subscriptions.js";

const hasOpenssl = await available("openssl");

describe.skipIf(!hasOpenssl)("delegation notifications and emails", () => {
  let server: TestServer;
  let participant: TestOrganization;
  let msp: TestOrganization;
  let bystander: TestOrganization;

  beforeAll(async () => {
    server = await startTestServer();
    participant = await createOrganization(server, { country: "DK" });
    msp = await createOrganization(server, { kind: "MSP", country: "GB" });
    bystander = await createOrganization(server, { country: "DK" });
  });
  afterAll(async () => {
    await server?.close();
  });

  const recipientsOf = async (notificationId: string) => {
    const placeholder = server.app.db.isPostgres ? "$1" : "?";
    const rows = (await server.app.db.dataSource.query(`SELECT recipient, body FROM email_deliveries WHERE "notificationId" = ${placeholder}`, [
      Number(notificationId),
    ])) as Array<{ recipient: string; body: string }>;
    return rows;
  };
  const contactOf = async (orgId: string) =>
    (await server.ok<{ organization: { contactEmail: string } }>(`query($id: ID!) { organization(id: $id) { contactEmail } }`, { id: orgId })).organization.contactEmail;

  it("should email the participant's contact and officers asking them to confirm, and tell the MSP", async () => {
    const d = await requestDelegation(server, participant, msp, { kinds: ["SIGNING"], environment: "PRODUCTION" });
    const id = await notificationIdWhere(server, "delegationId", d.id, "DELEGATION_REQUESTED");
    const emails = await recipientsOf(id);
    const recipients = emails.map((e) => e.recipient).sort();
    const expected = [
      await contactOf(participant.id),
      ...participant.officers.map((o) => o.email),
      await contactOf(msp.id),
      ...msp.officers.map((o) => o.email),
    ].sort();
    expect(recipients).toEqual(expected);
    for (const email of emails) expect(email.body).toMatch(/must approve or decline this delegation/);
    await server.ok(REVOKE_DELEGATION, { id: d.id });
  });

  it("should show each delegation event to the participant and the MSP, with the delegation, and to no one else", async () => {
    const d = await requestDelegation(server, participant, msp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
    await server.ok(APPROVE, { id: d.id }, participant.officers[1]!.token);
    await server.ok(REVOKE_DELEGATION, { id: d.id }, participant.officers[0]!.token);
    const QUERY = `{ notifications(types: [DELEGATION_REQUESTED, DELEGATION_APPROVED, DELEGATION_REVOKED]) { nodes { type delegation { id status } } } }`;
    type Page = { notifications: { nodes: Array<{ type: string; delegation: { id: string; status: string } | null }> } };
    for (const token of [participant.officers[0]!.token, msp.officers[1]!.token]) {
      const { notifications } = await server.ok<Page>(QUERY, {}, token);
      const mine = notifications.nodes.filter((n) => n.delegation?.id === d.id);
      expect(mine.map((n) => n.type)).toEqual(["DELEGATION_REQUESTED", "DELEGATION_APPROVED", "DELEGATION_REVOKED"]);
      expect(mine.every((n) => n.delegation?.status === "REVOKED")).toBe(true);
    }
    const { notifications } = await server.ok<Page>(QUERY, {}, bystander.officers[0]!.token);
    expect(notifications.nodes).toEqual([]);
  });
});
