/**
 * "Its name may show, its people may not": an MSP sees nothing of a
 * participant's officers, while a delegation is active and after it ended,
 * in every field that names an officer. On SQLite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { csrPem } from "../support/csr.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { activeDelegation, REVOKE_DELEGATION } from "./helpers.js";

/** Every field of Delegation whose type is Officer, with everything an Officer has. */
const OFFICER = `id name email role status enrolled organization { id name }`;
const DELEGATIONS = `{ delegations { id status participant { id name } requestedBy { ${OFFICER} } decidedBy { ${OFFICER} } revokedBy { ${OFFICER} } } }`;

interface Seen {
  id: string;
  status: string;
  participant: { id: string; name: string };
  requestedBy: { id: string; role: string } | null;
  decidedBy: { id: string; email: string } | null;
  revokedBy: { id: string; email: string } | null;
}

const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("an MSP and the participant's people on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let participant: TestOrganization;
    let msp: TestOrganization;
    let delegationId: string;
    let participantCsrId: string;
    let operatorId: string;

    beforeAll(async () => {
      server = await startTestServer({ db });
      participant = await createOrganization(server, { name: "People Bank", officerCount: 2 });
      msp = await createOrganization(server, { name: "People Services MSP", kind: "MSP", officerCount: 2 });
      operatorId = (await server.ok<{ me: { officer: { id: string } } }>(`{ me { officer { id } } }`)).me.officer.id;
      delegationId = (await activeDelegation(server, participant, msp)).id;
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: participant.id, kind: "MTLS_CLIENT", environment: "MTF", pem: await csrPem(participant, "People Client") } },
        participant.officers[0]!.token,
      );
      participantCsrId = submitCsr.id;
    });
    afterAll(async () => {
      await server?.close();
    });

    const asMsp = () => server.ok<{ delegations: Seen[] }>(DELEGATIONS, {}, msp.officers[0]!.token);

    it("should show the MSP the delegation and the participant's name, but none of its officers, while the delegation is active", async () => {
      const { delegations } = await asMsp();
      const seen = delegations.find((d) => d.id === delegationId)!;
      expect(seen).toMatchObject({ status: "ACTIVE", participant: { id: participant.id, name: "People Bank" }, decidedBy: null, revokedBy: null });
      // The requester is a KMS operator: the service's own staff are visible to everyone.
      expect(seen.requestedBy).toMatchObject({ id: operatorId, role: "KMS_OPERATOR" });
      for (const o of participant.officers) expect(JSON.stringify(delegations)).not.toContain(o.email);
      // The participant and the operator see who decided.
      const forParticipant = await server.ok<{ delegations: Seen[] }>(DELEGATIONS, {}, participant.officers[1]!.token);
      expect(forParticipant.delegations.find((d) => d.id === delegationId)!.decidedBy).toMatchObject({ email: participant.officers[0]!.email });
      const forOperator = await server.ok<{ delegations: Seen[] }>(DELEGATIONS);
      expect(forOperator.delegations.find((d) => d.id === delegationId)!.decidedBy).toMatchObject({ email: participant.officers[0]!.email });
    });

    it("should refuse the MSP the participant's officer list and the submitter of the participant's own CSR", async () => {
      const officers = await server.gql(`query($id: ID!) { organization(id: $id) { name officers { email } } }`, { id: participant.id }, msp.officers[0]!.token);
      expect(officers.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      expect(JSON.stringify(officers)).not.toContain(participant.officers[0]!.email);
      const csr = await server.gql(
        `query($id: ID!) { certificateSigningRequest(id: $id) { id submittedBy { email } decidedBy { email } approvals { email } } }`,
        { id: participantCsrId },
        msp.officers[0]!.token,
      );
      expect(csr.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      expect(csr.errors?.[0]?.path).toEqual(["certificateSigningRequest", "submittedBy"]);
      expect(JSON.stringify(csr)).not.toContain(participant.officers[0]!.email);
      // Its own officers' requests it sees in full.
      const own = await server.ok<{ submitCsr: { submittedBy: { email: string } } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { submittedBy { email } } }`,
        { input: { organizationId: participant.id, kind: "MTLS_CLIENT", environment: "MTF", pem: await csrPem(participant, "MSP Client") } },
        msp.officers[1]!.token,
      );
      expect(own.submitCsr.submittedBy.email).toBe(msp.officers[1]!.email);
    });

    it("should show the MSP no participant officer in notifications about them", async () => {
      await server.ok(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, {
        input: { organizationId: participant.id, name: "Third Person", email: "third.person@people.example" },
      });
      const { notifications } = await server.ok<{ notifications: { nodes: Array<{ type: string; officer: { email: string } | null }> } }>(
        `{ notifications(first: 500) { nodes { type officer { email } } } }`,
        {},
        msp.officers[0]!.token,
      );
      expect(notifications.nodes.filter((n) => n.officer !== null).map((n) => n.officer!.email).every((e) => msp.officers.some((o) => o.email === e))).toBe(true);
      expect(JSON.stringify(notifications)).not.toContain("third.person@people.example");
    });

    it("should still show the MSP none of them after the participant revoked the delegation", async () => {
      await server.ok(REVOKE_DELEGATION, { id: delegationId }, participant.officers[1]!.token);
      const { delegations } = await asMsp();
      const seen = delegations.find((d) => d.id === delegationId)!;
      expect(seen).toMatchObject({ status: "REVOKED", participant: { id: participant.id, name: "People Bank" }, decidedBy: null, revokedBy: null });
      for (const o of participant.officers) expect(JSON.stringify(delegations)).not.toContain(o.email);
      const { delegations: forOperator } = await server.ok<{ delegations: Seen[] }>(DELEGATIONS);
      expect(forOperator.find((d) => d.id === delegationId)!.revokedBy).toMatchObject({ email: participant.officers[1]!.email });
    });
  });
});
