/**
 * Dual control (KEYPORTAL_DUAL_CONTROL, default PRODUCTION): signing a CSR,
 * and rotating a KMS certificate, needs a prior approval by a different
 * active operator. On SQLite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { csrPem } from "../support/csr.js";
import { available } from "../support/deps.js";
import { addOperator, type TestOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { auditRows, eventually, expectError } from "../officers/helpers.js";

const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`;
const APPROVE = `mutation($id: ID!) { approveCsr(csrId: $id) { id status approvals { id email } } }`;
const SIGN = `mutation($id: ID!) { signCsr(input: { csrId: $id }) { id serialNumber } }`;
const REJECT = `mutation($id: ID!) { rejectCsr(csrId: $id, reason: "wrong subject") { id status approvals { id } } }`;
const CANCEL = `mutation($id: ID!) { cancelCsr(csrId: $id) { id status } }`;
const CSR = `query($id: ID!) { certificateSigningRequest(id: $id) { id status approvals { id } decidedBy { id } } }`;
const APPROVE_ROTATION = `mutation($env: Environment!, $purpose: KmsCertificatePurpose!) { approveKmsRotation(environment: $env, purpose: $purpose) { id environment purpose approvedAt expiresAt approvedBy { id } } }`;
const ROTATE = `mutation($env: Environment!, $purpose: KmsCertificatePurpose!) { rotateKmsCertificate(environment: $env, purpose: $purpose) { id serialNumber current } }`;

const postgres = await available("postgres");
let counter = 0;

async function submit(server: TestServer, org: TestOrganization, environment: "MTF" | "PRODUCTION"): Promise<string> {
  counter += 1;
  const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
    SUBMIT,
    { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment, pem: await csrPem(org, `Dual ${counter}`) } },
    org.officers[0]!.token,
  );
  return submitCsr.id;
}

describe.each<DbKind>(["sqlite", "postgres"])("dual control on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;
    let second: TestOfficer;
    let bootstrapId: string;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { officerCount: 2 });
      second = await addOperator(server, `second-${db}@kms.example`);
      bootstrapId = (await server.ok<{ me: { officer: { id: string } } }>(`{ me { officer { id } } }`)).me.officer.id;
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should refuse to sign a PRODUCTION CSR without an approval with PRECONDITION_FAILED / SECOND_APPROVAL_REQUIRED", async () => {
      const id = await submit(server, org, "PRODUCTION");
      expectError(await server.gql(SIGN, { id }, server.operatorToken), "PRECONDITION_FAILED", "SECOND_APPROVAL_REQUIRED");
      const { certificateSigningRequest } = await server.ok<{ certificateSigningRequest: { status: string; approvals: unknown[] } }>(CSR, { id });
      expect(certificateSigningRequest).toMatchObject({ status: "PENDING", approvals: [] });
      expect((await auditRows(server)).at(-1)).toMatchObject({ action: "csr.sign", outcome: "PRECONDITION_FAILED" });
    });

    it("should sign after another operator approved, show the approval, and refuse the approver's own signature with SAME_OPERATOR", async () => {
      const id = await submit(server, org, "PRODUCTION");
      const { approveCsr } = await server.ok<{ approveCsr: { status: string; approvals: Array<{ id: string; email: string }> } }>(APPROVE, { id }, second.token);
      expect(approveCsr).toEqual({ id, status: "PENDING", approvals: [{ id: second.id, email: second.email }] });
      const approved = (await auditRows(server)).at(-1)!;
      expect(approved).toMatchObject({ action: "csr.approve", outcome: "SUCCESS", actorId: second.id, targetId: id, organizationId: org.id });
      expectError(await server.gql(SIGN, { id }, second.token), "PRECONDITION_FAILED", "SAME_OPERATOR");
      expectError(await server.gql(APPROVE, { id }, server.operatorToken), "CONFLICT", "ALREADY_APPROVED");
      const { signCsr } = await server.ok<{ signCsr: { id: string } }>(SIGN, { id });
      expect(signCsr.id).toEqual(expect.any(String));
      const signed = (await auditRows(server)).at(-1)!;
      expect(signed).toMatchObject({ action: "csr.sign", outcome: "SUCCESS", actorId: bootstrapId });
      expect(JSON.parse(signed.details)).toMatchObject({ approvedById: second.id });
      // The participant sees who approved (an operator), like who decided.
      const seen = await server.ok<{ certificateSigningRequest: { status: string; approvals: Array<{ id: string }>; decidedBy: { id: string } } }>(
        CSR,
        { id },
        org.officers[1]!.token,
      );
      expect(seen.certificateSigningRequest).toMatchObject({ status: "SIGNED", approvals: [{ id: second.id }], decidedBy: { id: bootstrapId } });
    });

    it("should tell the operators with CSR_APPROVED, and not the participant", async () => {
      const id = await submit(server, org, "PRODUCTION");
      await server.ok(APPROVE, { id }, second.token);
      const query = `{ notifications(types: [CSR_APPROVED], first: 500) { nodes { type message } } }`;
      const forOperator = await eventually(async () => {
        const { notifications } = await server.ok<{ notifications: { nodes: Array<{ type: string; message: string }> } }>(query);
        return notifications.nodes.length > 0 ? notifications.nodes : undefined;
      });
      expect(forOperator.at(-1)!.message).toContain("another operator may now sign it");
      const forParticipant = await server.ok<{ notifications: { nodes: unknown[] } }>(query, {}, org.officers[0]!.token);
      expect(forParticipant.notifications.nodes).toEqual([]);
      await eventually(async () => (server.sentMail.some((m) => m.to === second.email && m.subject.includes("CSR approved")) ? true : undefined));
      expect(server.sentMail.some((m) => org.officers.some((o) => o.email === m.to) && m.subject.includes("CSR approved"))).toBe(false);
    });

    it("should still let an operator reject, and the participant cancel, an approved request", async () => {
      const rejected = await submit(server, org, "PRODUCTION");
      await server.ok(APPROVE, { id: rejected }, second.token);
      const { rejectCsr } = await server.ok<{ rejectCsr: { status: string } }>(REJECT, { id: rejected });
      expect(rejectCsr.status).toBe("REJECTED");
      const cancelled = await submit(server, org, "PRODUCTION");
      await server.ok(APPROVE, { id: cancelled }, second.token);
      const { cancelCsr } = await server.ok<{ cancelCsr: { status: string } }>(CANCEL, { id: cancelled }, org.officers[0]!.token);
      expect(cancelCsr.status).toBe("CANCELLED");
      expectError(await server.gql(SIGN, { id: cancelled }, server.operatorToken), "CONFLICT", "ALREADY_DECIDED");
    });

    it("should not count an approval whose operator was deactivated since", async () => {
      const third = await addOperator(server, `third-${db}@kms.example`);
      const id = await submit(server, org, "PRODUCTION");
      await server.ok(APPROVE, { id }, third.token);
      await server.ok(`mutation($id: ID!) { deactivateOfficer(officerId: $id) { id } }`, { id: third.id });
      expectError(await server.gql(SIGN, { id }, server.operatorToken), "PRECONDITION_FAILED", "SECOND_APPROVAL_REQUIRED");
    });

    it("should sign MTF requests without an approval, with approvals empty, and refuse approveCsr there", async () => {
      const id = await submit(server, org, "MTF");
      expectError(await server.gql(APPROVE, { id }, second.token), "PRECONDITION_FAILED", "DUAL_CONTROL_NOT_REQUIRED");
      await server.ok(SIGN, { id });
      const { certificateSigningRequest } = await server.ok<{ certificateSigningRequest: { approvals: unknown[] } }>(CSR, { id });
      expect(certificateSigningRequest.approvals).toEqual([]);
    });

    it("should refuse approveCsr to anyone but an operator with FORBIDDEN", async () => {
      const id = await submit(server, org, "PRODUCTION");
      expectError(await server.gql(APPROVE, { id }, org.officers[1]!.token), "FORBIDDEN");
      expectError(await server.gql(APPROVE, { id }, null), "UNAUTHENTICATED");
    });

    it("should rotate a PRODUCTION KMS certificate only on another operator's approval, used once", async () => {
      const vars = { env: "PRODUCTION", purpose: "MESSAGE_SIGNING" };
      expectError(await server.gql(ROTATE, vars, server.operatorToken), "PRECONDITION_FAILED", "SECOND_APPROVAL_REQUIRED");
      const { approveKmsRotation } = await server.ok<{ approveKmsRotation: { approvedBy: { id: string }; approvedAt: string; expiresAt: string } }>(
        APPROVE_ROTATION,
        vars,
        second.token,
      );
      expect(approveKmsRotation.approvedBy.id).toBe(second.id);
      expect(new Date(approveKmsRotation.expiresAt).getTime() - new Date(approveKmsRotation.approvedAt).getTime()).toBe(86_400_000);
      expect((await auditRows(server)).at(-1)).toMatchObject({ action: "kms.certificate.approve_rotation", outcome: "SUCCESS", actorId: second.id });
      expectError(await server.gql(ROTATE, vars, second.token), "PRECONDITION_FAILED", "SAME_OPERATOR");
      const { rotateKmsCertificate } = await server.ok<{ rotateKmsCertificate: { current: boolean } }>(ROTATE, vars);
      expect(rotateKmsCertificate.current).toBe(true);
      const rotated = (await auditRows(server)).at(-1)!;
      expect(rotated).toMatchObject({ action: "kms.certificate.rotate", outcome: "SUCCESS", actorId: bootstrapId });
      expect(JSON.parse(rotated.details)).toMatchObject({ approvedById: second.id });
      // Used up: the next rotation needs a new approval.
      expectError(await server.gql(ROTATE, vars, server.operatorToken), "PRECONDITION_FAILED", "SECOND_APPROVAL_REQUIRED");
    });

    it("should let a rotation approval lapse after 24 hours, and rotate MTF without one", async () => {
      const vars = { env: "PRODUCTION", purpose: "TLS_SERVER" };
      await server.ok(APPROVE_ROTATION, vars, second.token);
      server.clock.advanceMs(86_400_000);
      expectError(await server.gql(ROTATE, vars, server.operatorToken), "PRECONDITION_FAILED", "SECOND_APPROVAL_REQUIRED");
      expectError(await server.gql(APPROVE_ROTATION, { env: "MTF", purpose: "TLS_SERVER" }, second.token), "PRECONDITION_FAILED", "DUAL_CONTROL_NOT_REQUIRED");
      const { rotateKmsCertificate } = await server.ok<{ rotateKmsCertificate: { current: boolean } }>(ROTATE, { env: "MTF", purpose: "TLS_SERVER" });
      expect(rotateKmsCertificate.current).toBe(true);
    });
  });
});

describe("KEYPORTAL_DUAL_CONTROL", () => {
  it("should sign PRODUCTION with one operator when set empty", async () => {
    const server = await startTestServer({ env: { KEYPORTAL_DUAL_CONTROL: "" } });
    try {
      const org = await createOrganization(server);
      const id = await submit(server, org, "PRODUCTION");
      await server.ok(SIGN, { id });
      const { rotateKmsCertificate } = await server.ok<{ rotateKmsCertificate: { current: boolean } }>(ROTATE, { env: "PRODUCTION", purpose: "MESSAGE_ENCRYPTION" });
      expect(rotateKmsCertificate.current).toBe(true);
    } finally {
      await server.close();
    }
  });

  it("should put MTF under dual control when listed", async () => {
    const server = await startTestServer({ env: { KEYPORTAL_DUAL_CONTROL: "MTF, PRODUCTION" } });
    try {
      const org = await createOrganization(server);
      const id = await submit(server, org, "MTF");
      expectError(await server.gql(SIGN, { id }, server.operatorToken), "PRECONDITION_FAILED", "SECOND_APPROVAL_REQUIRED");
    } finally {
      await server.close();
    }
  });
});
