import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, openssl } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { CERTIFICATE, COMPROMISE, csrFor, expectError, issue, RENEW, SIGN, SUBMIT } from "./helpers.js";

const hasOpenssl = await available("openssl");

interface CertificateView {
  id: string;
  status: string;
  revokedAt: string | null;
  renewalOf: { id: string } | null;
  renewedBy: { id: string } | null;
}

describe.skipIf(!hasOpenssl)("renewal", () => {
  let server: TestServer;
  let org: TestOrganization;
  let other: TestOrganization;
  let tmp: ReturnType<typeof makeTempDir>;

  beforeAll(async () => {
    tmp = makeTempDir("kp-renewal-");
    server = await startTestServer();
    org = await createOrganization(server, { country: "IE" });
    other = await createOrganization(server, { country: "IE" });
  });
  afterAll(async () => {
    try {
      await server?.close();
    } finally {
      tmp?.cleanup();
    }
  });

  const view = async (id: string) => (await server.ok<{ certificate: CertificateView }>(CERTIFICATE, { id }, org.officers[0]!.token)).certificate;

  async function renew(certificateId: string, validityDays?: number): Promise<{ csrId: string; certificateId: string }> {
    const fresh = csrFor(tmp.path, org, "Renewed Client");
    const { renewCertificate } = await server.ok<{ renewCertificate: { id: string; renewalOf: { id: string } } }>(
      RENEW,
      { input: { certificateId, pem: fresh.pem } },
      org.officers[1]!.token,
    );
    expect(renewCertificate.renewalOf.id).toBe(certificateId);
    const { signCsr } = await server.ok<{ signCsr: { id: string; renewalOf: { id: string } } }>(SIGN, { id: renewCertificate.id, days: validityDays ?? null });
    expect(signCsr.renewalOf.id).toBe(certificateId);
    return { csrId: renewCertificate.id, certificateId: signCsr.id };
  }

  it("should link the renewal both ways and keep the old certificate ACTIVE beside the new one until it expires", async () => {
    const old = await issue(server, tmp.path, org, { validityDays: 30 });
    const renewed = await renew(old.id, 365);
    expect(await view(old.id)).toMatchObject({ status: "ACTIVE", revokedAt: null, renewedBy: { id: renewed.certificateId }, renewalOf: null });
    expect(await view(renewed.certificateId)).toMatchObject({ status: "ACTIVE", renewalOf: { id: old.id }, renewedBy: null });
    const { certificateSigningRequest } = await server.ok<{ certificateSigningRequest: { renewalOf: { id: string }; certificate: { id: string } } }>(
      `query($id: ID!) { certificateSigningRequest(id: $id) { renewalOf { id } certificate { id } } }`,
      { id: renewed.csrId },
      org.officers[0]!.token,
    );
    expect(certificateSigningRequest).toEqual({ renewalOf: { id: old.id }, certificate: { id: renewed.certificateId } });

    const start = server.clock.now();
    server.clock.advanceDays(31);
    try {
      expect((await view(old.id)).status).toBe("EXPIRED");
      expect((await view(renewed.certificateId)).status).toBe("ACTIVE");
    } finally {
      server.clock.set(start);
    }
  });

  it("should renew a certificate after it expired and after it was revoked", async () => {
    const expiring = await issue(server, tmp.path, org, { validityDays: 1 });
    const start = server.clock.now();
    server.clock.advanceDays(3);
    try {
      expect((await view(expiring.id)).status).toBe("EXPIRED");
      const renewed = await renew(expiring.id);
      expect((await view(expiring.id)).renewedBy).toEqual({ id: renewed.certificateId });
    } finally {
      server.clock.set(start);
    }
    const revoked = await issue(server, tmp.path, org);
    await server.ok(COMPROMISE, { id: revoked.id }, org.officers[0]!.token);
    const renewed = await renew(revoked.id);
    expect(await view(revoked.id)).toMatchObject({ status: "REVOKED", renewedBy: { id: renewed.certificateId } });
  });

  it("should refuse the old key with KEY_REUSE, for the renewal and for anyone else's request", async () => {
    const old = await issue(server, tmp.path, org);
    const sameKey = openssl(["req", "-new", "-key", old.key, "-subj", `/C=${org.country}/O=${org.name}/CN=Same Key`, "-sha256"]);
    expectError(await server.gql(RENEW, { input: { certificateId: old.id, pem: sameKey } }, org.officers[0]!.token), "BAD_USER_INPUT", "KEY_REUSE");
    const forOther = openssl(["req", "-new", "-key", old.key, "-subj", `/C=${other.country}/O=${other.name}/CN=Same Key`, "-sha256"]);
    expectError(
      await server.gql(SUBMIT, { input: { organizationId: other.id, kind: "MTLS_CLIENT", environment: "MTF", pem: forOther } }, other.officers[0]!.token),
      "BAD_USER_INPUT",
      "KEY_REUSE",
    );
  });

  it("should refuse renewal to another organization's officers and to operators", async () => {
    const old = await issue(server, tmp.path, org);
    const fresh = csrFor(tmp.path, other, "Intruder");
    expectError(await server.gql(RENEW, { input: { certificateId: old.id, pem: fresh.pem } }, other.officers[0]!.token), "NOT_FOUND", "NOT_FOUND");
    const mine = csrFor(tmp.path, org, "By Operator");
    expectError(await server.gql(RENEW, { input: { certificateId: old.id, pem: mine.pem } }, server.operatorToken), "FORBIDDEN", "FORBIDDEN");
  });

  it("should send no expiry reminder for a renewed certificate while an unrenewed one gets its reminder", async () => {
    // Both are within 120 days of expiry from the start: the next scan reaches the 120-day threshold.
    const renewedOld = await issue(server, tmp.path, org, { validityDays: 100 });
    const unrenewed = await issue(server, tmp.path, org, { validityDays: 100 });
    const renewed = await renew(renewedOld.id, 365);
    const { runExpiryScan } = await server.ok<{ runExpiryScan: number }>(`mutation { runExpiryScan }`);
    expect(runExpiryScan).toBeGreaterThanOrEqual(1);
    const rows = (await server.app.db.dataSource.query(
      `SELECT "certificateId", "daysUntilExpiry" FROM notifications WHERE type = 'CERTIFICATE_EXPIRING'`,
    )) as Array<{ certificateId: string; daysUntilExpiry: number }>;
    const reminded = rows.map((r) => r.certificateId);
    expect(reminded).toContain(unrenewed.id);
    expect(reminded).not.toContain(renewedOld.id);
    expect(reminded).not.toContain(renewed.certificateId);
  });
});
