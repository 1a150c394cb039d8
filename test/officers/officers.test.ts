import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addOfficer } from "../support/officers.js";
import { createOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { CREATE_ORGANIZATION, DEACTIVATE_OFFICER, expectError, freshEmail, REGISTER_OFFICER } from "./helpers.js";

const READINESS = `query($id: ID!) { organization(id: $id) { activeOfficerCount keyExchangeReady officers(includeDeactivated: true) { id status } } }`;

describe("officers", () => {
  let server: TestServer;
  let operatorId: string;
  let kmsId: string;

  beforeAll(async () => {
    server = await startTestServer();
    const { me } = await server.ok<{ me: { officer: { id: string }; organization: { id: string } } }>(`{ me { officer { id } organization { id } } }`);
    operatorId = me.officer.id;
    kmsId = me.organization.id;
  });
  afterAll(async () => {
    await server?.close();
  });

  describe("key-exchange readiness", () => {
    it("should make an organization ready at two active officers and not ready again when one leaves", async () => {
      const org = await createOrganization(server, { officerCount: 0 });
      const readiness = async () =>
        (await server.ok<{ organization: { activeOfficerCount: number; keyExchangeReady: boolean } }>(READINESS, { id: org.id })).organization;

      expect(await readiness()).toMatchObject({ activeOfficerCount: 0, keyExchangeReady: false });
      const first = await addOfficer(server, org.id, freshEmail());
      expect(await readiness()).toMatchObject({ activeOfficerCount: 1, keyExchangeReady: false });
      const second = await addOfficer(server, org.id, freshEmail());
      expect(await readiness()).toMatchObject({ activeOfficerCount: 2, keyExchangeReady: true });

      // The first officer deactivates the second: one left, not ready.
      const { deactivateOfficer } = await server.ok<{ deactivateOfficer: { id: string; status: string } }>(DEACTIVATE_OFFICER, { id: second.id }, first.token);
      expect(deactivateOfficer).toEqual({ id: second.id, status: "DEACTIVATED" });
      expect(await readiness()).toEqual({
        activeOfficerCount: 1,
        keyExchangeReady: false,
        officers: expect.arrayContaining([
          { id: first.id, status: "ACTIVE" },
          { id: second.id, status: "DEACTIVATED" },
        ]),
      });
      // The deactivated officer no longer appears among the active ones.
      const active = await server.ok<{ organization: { officers: Array<{ id: string }> } }>(`query($id: ID!) { organization(id: $id) { officers { id } } }`, { id: org.id });
      expect(active.organization.officers).toEqual([{ id: first.id }]);
    });

    it("should refuse to deactivate an officer twice with CONFLICT / ALREADY_DEACTIVATED", async () => {
      const org = await createOrganization(server, { officerCount: 2 });
      await server.ok(DEACTIVATE_OFFICER, { id: org.officers[1]!.id });
      expectError(await server.gql(DEACTIVATE_OFFICER, { id: org.officers[1]!.id }, server.operatorToken), "CONFLICT", "ALREADY_DEACTIVATED");
    });
  });

  describe("deactivation rules", () => {
    it("should refuse to let an officer deactivate themself with FORBIDDEN, and leave them active", async () => {
      const org = await createOrganization(server, { officerCount: 2 });
      const self = org.officers[0]!;
      expectError(await server.gql(DEACTIVATE_OFFICER, { id: self.id }, self.token), "FORBIDDEN");
      const me = await server.ok<{ me: { officer: { status: string } } }>(`{ me { officer { status } } }`, {}, self.token);
      expect(me.me.officer.status).toBe("ACTIVE");
    });

    it("should refuse to deactivate the last active operator with PRECONDITION_FAILED / LAST_OPERATOR", async () => {
      expectError(await server.gql(DEACTIVATE_OFFICER, { id: operatorId }, server.operatorToken), "PRECONDITION_FAILED", "LAST_OPERATOR");
      expect((await server.ok<{ me: { role: string } }>(`{ me { role } }`)).me.role).toBe("KMS_OPERATOR");
    });

    // Last in this block: it leaves the bootstrap operator deactivated.
    it("should let one of two operators deactivate the other, and then refuse the last one", async () => {
      const second = await addOfficer(server, kmsId, freshEmail("operator"));
      const me = await server.ok<{ me: { role: string } }>(`{ me { role } }`, {}, second.token);
      expect(me.me.role).toBe("KMS_OPERATOR");
      // The second operator deactivates the first (operators may deactivate themselves too, but not the last one).
      expect((await server.ok<{ deactivateOfficer: { status: string } }>(DEACTIVATE_OFFICER, { id: operatorId }, second.token)).deactivateOfficer.status).toBe(
        "DEACTIVATED",
      );
      expectError(await server.gql(DEACTIVATE_OFFICER, { id: operatorId }, server.operatorToken), "UNAUTHENTICATED");
      expectError(await server.gql(DEACTIVATE_OFFICER, { id: second.id }, second.token), "PRECONDITION_FAILED", "LAST_OPERATOR");
    });
  });
});

describe("input validation", () => {
  let server: TestServer;
  let org: { id: string };

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { officerCount: 1 });
  });
  afterAll(async () => {
    await server?.close();
  });

  const createOrg = (input: Partial<{ name: string; kind: string; contactEmail: string; country: string }>) =>
    server.gql<{ createOrganization: { id: string; name: string; country: string; contactEmail: string } }>(
      CREATE_ORGANIZATION,
      { input: { name: `Valid Bank ${Math.random().toString(36).slice(2, 8)}`, kind: "PARTICIPANT", contactEmail: "pki@valid.example", country: "GB", ...input } },
      server.operatorToken,
    );
  const register = (input: Partial<{ organizationId: string; name: string; email: string }>) =>
    server.gql<{ registerOfficer: { id: string; email: string; name: string } }>(
      REGISTER_OFFICER.replace("{ id email", "{ id name email"),
      { input: { organizationId: org.id, name: "Valid Officer", email: freshEmail(), ...input } },
      server.operatorToken,
    );

  it.each(["XX", "UK", "gbr", "G", "", "12", "ÜK"])("should refuse country %j with BAD_USER_INPUT / INVALID_COUNTRY", async (country) => {
    expectError(await createOrg({ country }), "BAD_USER_INPUT", "INVALID_COUNTRY");
  });

  it("should normalize the country code to upper case", async () => {
    const result = await createOrg({ country: " gb " });
    expect(result.errors).toBeUndefined();
    expect(result.data?.createOrganization.country).toBe("GB");
  });

  it.each(["not-an-email", "pki@", "@bank.example", "pki@bank", "p ki@bank.example", "pki@bank.example, evil@x.example", `${"a".repeat(65)}@bank.example`])(
    "should refuse contact email %j with BAD_USER_INPUT / INVALID_EMAIL",
    async (contactEmail) => {
      expectError(await createOrg({ contactEmail }), "BAD_USER_INPUT", "INVALID_EMAIL");
    },
  );

  it.each(["", "   ", "A".repeat(65), "Bank\u0000Name", "Bank\u200bName"])("should refuse organization name %j with BAD_USER_INPUT / INVALID_NAME", async (name) => {
    expectError(await createOrg({ name }), "BAD_USER_INPUT", "INVALID_NAME");
  });

  it("should refuse a second organization with the same name with CONFLICT / NAME_TAKEN", async () => {
    const name = `Unique Bank ${Math.random().toString(36).slice(2, 8)}`;
    expect((await createOrg({ name })).errors).toBeUndefined();
    expectError(await createOrg({ name }), "CONFLICT", "NAME_TAKEN");
  });

  it("should refuse a KMS organization with BAD_USER_INPUT", async () => {
    expectError(await createOrg({ kind: "KMS" }), "BAD_USER_INPUT", "INVALID_KIND");
  });

  it.each(["not-an-email", "officer@", "officer@@bank.example", "officer@bank"])("should refuse officer email %j with BAD_USER_INPUT / INVALID_EMAIL", async (email) => {
    expectError(await register({ email }), "BAD_USER_INPUT", "INVALID_EMAIL");
  });

  it.each(["", "  \t ", "x".repeat(201), "Eve\u0007"])("should refuse officer name %j with BAD_USER_INPUT / INVALID_NAME", async (name) => {
    expectError(await register({ name }), "BAD_USER_INPUT", "INVALID_NAME");
  });

  it("should trim and collapse whitespace in an officer's name", async () => {
    const result = await register({ name: "  Ada   Lovelace " });
    expect(result.errors).toBeUndefined();
    expect(result.data?.registerOfficer.name).toBe("Ada Lovelace");
  });

  it("should refuse the same officer email twice in one organization with CONFLICT / EMAIL_TAKEN, also when the domain's case differs", async () => {
    const email = freshEmail("dup");
    expect((await register({ email })).errors).toBeUndefined();
    expectError(await register({ email }), "CONFLICT", "EMAIL_TAKEN");
    const [local, domain] = email.split("@");
    expectError(await register({ email: `${local}@${domain!.toUpperCase()}` }), "CONFLICT", "EMAIL_TAKEN");
  });

  it("should accept the same officer email in another organization", async () => {
    const email = freshEmail("shared");
    const other = await createOrganization(server, { officerCount: 0 });
    expect((await register({ email })).errors).toBeUndefined();
    const again = await register({ email, organizationId: other.id });
    expect(again.errors).toBeUndefined();
    expect(again.data?.registerOfficer.email).toBe(email);
  });
});
