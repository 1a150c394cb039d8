import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Certificate } from "../../src/certificates/certificate.entity.js";
import { buildCertificateRow, type Issuance, insertIssued } from "../../src/certificates/issuance.js";
import { ALL_ORGANIZATIONS, CertificateTally } from "../../src/certificates/tally.entity.js";
import { CertificateKind, CertificateStatus, Environment } from "../../src/kernel/domain.js";
import { csrPem } from "../support/csr.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

/** certificates/ creates the Certificate row of an issuance: built, inserted, counted, and linked from what it renews. */
describe("certificate issuance rows", () => {
  let server: TestServer;
  let org: TestOrganization;
  const csrIds: string[] = [];
  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server);
    for (const name of ["Issuance 1", "Issuance 2"]) {
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: org.id, kind: "SIGNING", environment: "MTF", pem: await csrPem(org, name) } },
        org.officers[0]!.token,
      );
      csrIds.push(submitCsr.id);
    }
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  const issuance = (serialNumber: string, renewalOfId: string | null): Issuance => ({
    organizationId: org.id,
    kind: CertificateKind.SIGNING,
    environment: Environment.MTF,
    serialNumber,
    subject: "CN=issuance,O=Issuance Test,C=DE",
    issuer: "CN=Test CA",
    commonName: "issuance",
    keyAlgorithm: "EC P-256",
    publicKeyFingerprint: `fp-${serialNumber}`,
    notBefore: new Date("2026-11-28T08:00:00.000Z"),
    notAfter: new Date("2027-11-28T08:00:00.000Z"),
    der: new Uint8Array([0x30, 0x03, 0x02, 0x01, Number.parseInt(serialNumber, 16)]),
    csrId: csrIds[Number.parseInt(serialNumber, 16) - 1]!,
    renewalOfId,
    createdAt: new Date("2026-11-28T08:00:00.000Z"),
  });

  const activeTally = (organizationId: string) =>
    server.app.db.manager
      .findOne(CertificateTally, {
        where: { organizationId, environment: Environment.MTF, kind: CertificateKind.SIGNING, lifecycle: CertificateStatus.ACTIVE, expiryDay: "2027-11-28" },
      })
      .then((t) => t?.n ?? 0);

  it("builds an ACTIVE row with the DER's fingerprint, inserts it, counts it and links the renewal", async () => {
    const first = await server.app.db.transaction(async ({ em }) => {
      const row = buildCertificateRow(em, issuance("01", null));
      await insertIssued(em, row);
      return row;
    });
    expect(first.lifecycle).toBe(CertificateStatus.ACTIVE);
    expect(first.revokedAt).toBeNull();
    expect(first.renewedById).toBeNull();
    expect(first.derBase64).toBe(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]).toString("base64"));
    expect(first.fingerprintSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await activeTally(org.id)).toBe(1);

    const renewal = await server.app.db.transaction(async ({ em }) => {
      const row = buildCertificateRow(em, issuance("02", first.id));
      await insertIssued(em, row);
      return row;
    });
    expect(renewal.id).not.toBe(first.id);
    const stored = await server.app.db.manager.findOneOrFail(Certificate, { where: { id: first.id } });
    expect(stored.renewedById).toBe(renewal.id);
    const again = await server.app.db.manager.findOneOrFail(Certificate, { where: { id: renewal.id } });
    expect(again.renewalOfId).toBe(first.id);
    expect(again.serialNumber).toBe("02");
    expect(await activeTally(org.id)).toBe(2);
    expect(await activeTally(ALL_ORGANIZATIONS)).toBeGreaterThanOrEqual(2);
  });
});
