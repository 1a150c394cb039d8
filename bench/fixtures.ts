/**
 * Bulk rows for benchmarks, written straight through the data source: the
 * CSR → certificate flow would take minutes for tens of thousands. Only
 * what the measured paths read is realistic (dates, organization, status).
 */
import { randomUUID } from "node:crypto";
import type { App } from "../src/app.js";
import { Certificate } from "../src/certificates/certificate.entity.js";
import { CertificateSigningRequest } from "../src/csrs/csr.entity.js";
import { recordCertificateChanges, recordCsrChanges } from "../src/certificates/tallies.js";
import { CertificateKind, CertificateStatus, CsrStatus, Environment, OfficerStatus, OrganizationKind, Role } from "../src/kernel/domain.js";
import { Officer } from "../src/officers/officer.entity.js";
import { Organization } from "../src/organizations/organization.entity.js";

const DAY_MS = 86_400_000;

export async function bulkCertificates(app: App, opts: { count: number; notAfterDays: (i: number) => number }): Promise<{ organizationId: string; officerId: string }> {
  const now = app.clock.now();
  const organizationId = randomUUID();
  const officerId = randomUUID();
  await app.db.transaction(async ({ em }) => {
    await em.insert(Organization, { id: organizationId, name: `Bench Bank ${organizationId.slice(0, 8)}`, kind: OrganizationKind.PARTICIPANT, contactEmail: "pki@bench.example", country: "GB", createdAt: now });
    await em.insert(Officer, { id: officerId, organizationId, name: "Bench Officer", email: "officer@bench.example", role: Role.SECURITY_OFFICER, status: OfficerStatus.ACTIVE, createdAt: now, deactivatedAt: null });
  });
  const kinds = [CertificateKind.MTLS_CLIENT, CertificateKind.SIGNING, CertificateKind.ENCRYPTION];
  for (let start = 0; start < opts.count; start += 250) {
    const csrs: Array<Partial<CertificateSigningRequest>> = [];
    const certificates: Array<Partial<Certificate>> = [];
    for (let i = start; i < Math.min(opts.count, start + 250); i++) {
      const csrId = randomUUID();
      const certificateId = randomUUID();
      const fingerprint = randomUUID().replace(/-/g, "").padEnd(64, "0");
      const kind = kinds[i % 3]!;
      const notBefore = new Date(now.getTime() - DAY_MS);
      csrs.push({
        id: csrId, organizationId, kind, environment: Environment.MTF, status: CsrStatus.SIGNED, subject: `CN=Bench ${i},O=Bench Bank,C=GB`,
        commonName: `Bench ${i}`, keyAlgorithm: "EC-P256", publicKeyFingerprint: fingerprint, pem: "-", submittedById: officerId,
        submittedAt: notBefore, delegationId: null, decidedById: officerId, decidedAt: notBefore, rejectionReason: null, renewalOfId: null, certificateId,
      });
      certificates.push({
        id: certificateId, organizationId, kind, environment: Environment.MTF, serialNumber: randomUUID().replace(/-/g, ""),
        subject: `CN=Bench ${i},O=Bench Bank,C=GB`, issuer: "CN=KeyPortal MTF Issuing CA,O=KeyPortal", commonName: `Bench ${i}`, keyAlgorithm: "EC-P256",
        publicKeyFingerprint: fingerprint, notBefore, notAfter: new Date(now.getTime() + opts.notAfterDays(i) * DAY_MS),
        fingerprintSha256: fingerprint, derBase64: "", csrId, revokedAt: null, revocationReason: null, renewalOfId: null, renewedById: null,
        createdAt: new Date(notBefore.getTime() + i),
      });
    }
    await app.db.transaction(async ({ em }) => {
      await em.insert(CertificateSigningRequest, csrs);
      await em.insert(Certificate, certificates);
      // As issuance does: the tallies behind totalCount change in the same transaction.
      await recordCsrChanges(em, csrs.map((csr) => ({ csr: csr as CertificateSigningRequest, from: null, to: CsrStatus.SIGNED })));
      await recordCertificateChanges(em, certificates.map((c) => ({ certificate: c as Certificate, from: null, to: CertificateStatus.ACTIVE })));
    });
  }
  return { organizationId, officerId };
}
