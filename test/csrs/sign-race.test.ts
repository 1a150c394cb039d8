/**
 * signCsr signs before its transaction, so concurrent calls on one request
 * all get a signature; the guarded UPDATE lets exactly one of them commit.
 * The losers' certificates are never stored, announced or mailed, and the
 * losers get ALREADY_DECIDED as before.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CsrStatus, NotificationType } from "../../src/kernel/domain.js";
import { csrPem } from "../support/csr.js";
import { available } from "../support/deps.js";
import { secondOperator, type TestOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  const deps = db === "postgres" ? await available("postgres") : true;
  describe.skipIf(!deps)(`concurrent signCsr on one request (${db})`, () => {
    let server: TestServer;
    let org: TestOrganization;
    let other: TestOfficer;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "PT" });
      other = await secondOperator(server);
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    it("should store, announce and mail exactly one certificate when 2 operators send 10 calls", async () => {
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem: await csrPem(org, "Raced Twice") } },
        org.officers[0]!.token,
      );
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          server.gql<{ signCsr: { id: string; serialNumber: string } }>(
            `mutation($id: ID!) { signCsr(input: { csrId: $id }) { id serialNumber } }`,
            { id: submitCsr.id },
            i % 2 ? other.token : server.operatorToken,
          ),
        ),
      );
      const winners = results.filter((r) => r.data?.signCsr);
      expect(winners).toHaveLength(1);
      const losers = results.filter((r) => !r.data?.signCsr);
      expect(losers.map((r) => r.errors?.[0]?.extensions)).toEqual(Array.from({ length: 9 }, () => ({ code: "CONFLICT", reason: "ALREADY_DECIDED" })));
      const winner = winners[0]!.data!.signCsr;

      const em = server.app.db.manager;
      const p = db === "postgres" ? ["$1", "$2"] : ["?", "?"];
      const certificates = (await em.query(`SELECT "id", "serialNumber" FROM "certificates" WHERE "csrId" = ${p[0]}`, [submitCsr.id])) as Array<{
        id: string;
        serialNumber: string;
      }>;
      expect(certificates).toEqual([{ id: winner.id, serialNumber: winner.serialNumber }]);
      const notifications = (await em.query(`SELECT "id", "certificateId" FROM "notifications" WHERE "csrId" = ${p[0]} AND "type" = ${p[1]}`, [
        submitCsr.id,
        NotificationType.CSR_SIGNED,
      ])) as Array<{ id: number | string; certificateId: string }>;
      expect(notifications).toHaveLength(1);
      expect(notifications[0]!.certificateId).toBe(winner.id);
      const emails = (await em.query(`SELECT "recipient", "body" FROM "email_deliveries" WHERE "notificationId" = ${p[0]}`, [notifications[0]!.id])) as Array<{
        recipient: string;
        body: string;
      }>;
      // One email per recipient (the contact and both officers), about the winner's certificate only.
      expect(emails.map((e) => e.recipient).sort()).toEqual([...new Set(emails.map((e) => e.recipient))].sort());
      expect(emails).toHaveLength(3);
      for (const e of emails) expect(e.body).toContain(winner.serialNumber);
      const signedMail = (await em.query(`SELECT COUNT(*) AS n FROM "email_deliveries" d JOIN "notifications" n ON n."id" = d."notificationId" WHERE n."csrId" = ${p[0]} AND n."type" = ${p[1]}`, [
        submitCsr.id,
        NotificationType.CSR_SIGNED,
      ])) as Array<{ n: number | string }>;
      expect(Number(signedMail[0]!.n)).toBe(3);
      const { certificateSigningRequest: csr } = await server.ok<{ certificateSigningRequest: { status: string; certificate: { id: string } } }>(
        `query($id: ID!) { certificateSigningRequest(id: $id) { status certificate { id } } }`,
        { id: submitCsr.id },
      );
      expect(csr).toEqual({ status: CsrStatus.SIGNED, certificate: { id: winner.id } });
    }, 60_000);
  });
}
