import { randomUUID } from "node:crypto";
import type { EntityManager } from "typeorm";
import { CertificateKind, CertificateStatus, Environment } from "../kernel/domain.js";
import { sha256Hex } from "../pki/spki.js";
import { Certificate } from "./certificate.entity.js";
import { recordCertificateChanges } from "./tallies.js";

/** What an issuance decided: the subject and key the request carried, the validity, and the DER the CA signed. */
export interface Issuance {
  organizationId: string;
  kind: CertificateKind;
  environment: Environment;
  serialNumber: string;
  subject: string;
  /** RFC 4514 form of the issuing CA's subject. */
  issuer: string;
  commonName: string;
  keyAlgorithm: string;
  publicKeyFingerprint: string;
  notBefore: Date;
  notAfter: Date;
  der: Uint8Array;
  /** The request it answers. */
  csrId: string;
  /** The certificate it renews, if any. */
  renewalOfId: string | null;
  createdAt: Date;
}

/** The Certificate row of a new issuance: ACTIVE, not revoked, not renewed; not yet stored (insertIssued does that). */
export function buildCertificateRow(em: EntityManager, issuance: Issuance): Certificate {
  const { der, ...fields } = issuance;
  return em.create(Certificate, {
    id: randomUUID(),
    ...fields,
    fingerprintSha256: sha256Hex(der),
    derBase64: Buffer.from(der).toString("base64"),
    revokedAt: null,
    revocationReason: null,
    renewedById: null,
    lifecycle: CertificateStatus.ACTIVE,
  });
}

/**
 * Stores a row from buildCertificateRow in the caller's transaction: the
 * insert, its tallies, and for a renewal the link from the certificate it
 * renews.
 */
export async function insertIssued(em: EntityManager, certificate: Certificate): Promise<void> {
  await em.createQueryBuilder().insert().into(Certificate).values(certificate).updateEntity(false).execute();
  await recordCertificateChanges(em, [{ certificate, from: null, to: CertificateStatus.ACTIVE }]);
  if (certificate.renewalOfId) await em.update(Certificate, { id: certificate.renewalOfId }, { renewedById: certificate.id });
}
