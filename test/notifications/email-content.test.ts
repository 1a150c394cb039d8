import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmailDelivery } from "../../src/notifications/email-delivery.entity.js";
import { Notification } from "../../src/notifications/notification.entity.js";
import { makeTempDir } from "../pki/helpers.js";
import { csrFor, issue } from "../certificates/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");
const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("what notification emails say on %s", (db) => {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !postgres))(db, () => {
    let server: TestServer;
    let org: TestOrganization;
    const tmp = makeTempDir("kp-email-content-");
    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "FR" });
    });
    afterAll(async () => {
      await server?.close();
      tmp.cleanup();
    });

    /** The body of the email sent for the newest notification of this type about the object. */
    async function bodyOf(type: string, where: Partial<Record<"certificateId" | "csrId" | "delegationId", string>>): Promise<string> {
      const notification = await server.app.db.manager.findOneOrFail(Notification, { where: { type: type as Notification["type"], ...where }, order: { id: "DESC" } });
      const delivery = await server.app.db.manager.findOneOrFail(EmailDelivery, { where: { notificationId: notification.id } });
      return delivery.body;
    }

    it("should name the certificate and give the exact download command and REST URL in CSR_SIGNED", async () => {
      const issued = await issue(server, tmp.path, org, { environment: "MTF" });
      const body = await bodyOf("CSR_SIGNED", { certificateId: issued.id });
      expect(body).toContain(`Certificate id: ${issued.id}`);
      expect(body).toContain(`Serial number:  ${issued.serialNumber}`);
      expect(body).toContain(`Valid until:    ${issued.notAfter}`);
      expect(body).toContain("Kind:           MTLS_CLIENT");
      expect(body).toContain("Environment:    MTF");
      expect(body).toMatch(new RegExp(`keyportal download --certificate ${issued.id} --format pem --out client-\\d+\\.pem`));
      expect(body).toContain(`${server.app.config.publicUrl}/certificates/${issued.id}.pem`);
      expect(body).toContain(`${server.app.config.publicUrl}/ca/MTF/chain.pem`);
      // Plain text that reads well: no control characters but newlines, no markup, short lines.
      expect(body).not.toMatch(/[\u0000-\u0009\u000b-\u001f]|<\/?[a-z]+>/);
      for (const line of body.split("\n")) expect(line.length, line).toBeLessThanOrEqual(220);
      expect(body).not.toContain(org.officers[0]!.token);
    });

    it("should give the commands for the next step after a rejection, a revocation and an expiry reminder", async () => {
      const { pem } = csrFor(tmp.path, org, "Rejected Host");
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: org.id, kind: "SIGNING", environment: "PRODUCTION", pem } },
        org.officers[0]!.token,
      );
      expect((await bodyOf("CSR_SUBMITTED", { csrId: submitCsr.id })).toString()).toContain(`keyportal status --csr ${submitCsr.id}`);
      await server.ok(`mutation($id: ID!) { rejectCsr(csrId: $id, reason: "wrong CN") { id } }`, { id: submitCsr.id });
      const rejected = await bodyOf("CSR_REJECTED", { csrId: submitCsr.id });
      expect(rejected).toContain(`Request id:     ${submitCsr.id}`);
      expect(rejected).toContain("Reason:         wrong CN");
      expect(rejected).toContain(`keyportal csr --kind SIGNING --cn "Rejected Host" --organization-id ${org.id}`);
      expect(rejected).toContain(`keyportal submit --csr <new csr file> --kind SIGNING --environment PRODUCTION --organization-id ${org.id}`);

      const revokedCert = await issue(server, tmp.path, org, { environment: "MTF" });
      await server.ok(`mutation($id: ID!) { revokeCertificate(certificateId: $id, reason: SUPERSEDED) { id } }`, { id: revokedCert.id }, org.officers[0]!.token);
      const revoked = await bodyOf("CERTIFICATE_REVOKED", { certificateId: revokedCert.id });
      expect(revoked).toContain(`Certificate id: ${revokedCert.id}`);
      expect(revoked).toContain(`keyportal status --certificate ${revokedCert.id}`);
      expect(revoked).toContain(`${server.app.config.publicUrl}/crl/MTF.crl`);

      const expiring = await issue(server, tmp.path, org, { environment: "MTF", validityDays: 20 });
      await server.ok(`mutation { runExpiryScan }`);
      const reminder = await bodyOf("CERTIFICATE_EXPIRING", { certificateId: expiring.id });
      expect(reminder).toContain(`keyportal renew --certificate ${expiring.id}`);
      expect(reminder).toContain(`Valid until:    ${expiring.notAfter}`);
    });

    it("should give the approve and decline commands for a delegation request", async () => {
      const msp = await createOrganization(server, { kind: "MSP", country: "FR" });
      const { requestDelegation } = await server.ok<{ requestDelegation: { id: string } }>(
        `mutation($input: RequestDelegationInput!) { requestDelegation(input: $input) { id } }`,
        { input: { participantId: org.id, mspId: msp.id, kinds: ["SIGNING"], environment: "MTF" } },
      );
      const body = await bodyOf("DELEGATION_REQUESTED", { delegationId: requestDelegation.id });
      expect(body).toContain(`Delegation id:  ${requestDelegation.id} (PENDING_APPROVAL)`);
      expect(body).toContain(`keyportal delegations approve --delegation ${requestDelegation.id}`);
      expect(body).toContain(`keyportal delegations decline --delegation ${requestDelegation.id}`);
    });

    it("should send it as a text/plain message", async () => {
      await server.app.services.emailWorker.runOnce();
      const dir = path.join(server.dataDir, "mail");
      const files = readdirSync(dir).filter((f) => f.endsWith(".eml"));
      expect(files.length).toBeGreaterThan(0);
      const message = readFileSync(path.join(dir, files[0]!), "utf8");
      expect(message).toMatch(/Content-Type: text\/plain; charset=utf-8/i);
    });
  });
});
