/**
 * The CA signature happens before signCsr's transaction: while the CA is
 * (here: made to be) slow, other mutations still commit, on SQLite (one
 * writing connection) and on PostgreSQL alike.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Environment } from "../../src/kernel/domain.js";
import { csrPem } from "../support/csr.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  const deps = db === "postgres" ? await available("postgres") : true;
  describe.skipIf(!deps)(`signCsr with a slow CA (${db})`, () => {
    let server: TestServer;
    let org: TestOrganization;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "PT" });
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    it("should let other mutations commit while the CA signs", async () => {
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem: await csrPem(org, "Slow CA") } },
        org.officers[0]!.token,
      );
      const ca = server.app.services.authorities.of(Environment.MTF);
      const issue = ca.issue.bind(ca);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let signing = false;
      // An injected fault: the CA takes until the gate opens.
      ca.issue = async (spec) => {
        signing = true;
        await gate;
        return issue(spec);
      };
      try {
        const sign = server.gql<{ signCsr: { id: string } }>(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { id } }`, { id: submitCsr.id }, server.operatorToken);
        let settled = false;
        void sign.then(() => (settled = true));
        while (!signing && !settled) await new Promise((r) => setTimeout(r, 10));
        expect(signing, JSON.stringify(settled ? await sign : null)).toBe(true);
        const other = server.gql<{ createOrganization: { id: string } }>(
          `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }`,
          { input: { name: `While Signing ${db}`, kind: "PARTICIPANT", contactEmail: "pki@while-signing.example", country: "GB" } },
          server.operatorToken,
        );
        const first = await Promise.race([other.then(() => "other mutation"), new Promise((r) => setTimeout(() => r("timeout"), 5000))]);
        expect(first).toBe("other mutation");
        expect((await other).data?.createOrganization?.id).toBeTruthy();
        release();
        expect((await sign).data?.signCsr?.id).toBeTruthy();
      } finally {
        release();
        ca.issue = issue;
      }
    }, 60_000);
  });
}
