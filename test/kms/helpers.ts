import { KmsCertificate } from "../../src/kms/kms-certificate.entity.js";
import type { TestServer } from "../support/server.js";

export interface KmsCertificateView {
  id: string;
  purpose: "MESSAGE_SIGNING" | "MESSAGE_ENCRYPTION" | "TLS_SERVER";
  environment: "MTF" | "PRODUCTION";
  keyId: string;
  current: boolean;
  status: "ACTIVE" | "EXPIRED" | "REVOKED";
  serialNumber: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  fingerprintSha256: string;
  pem: string;
  chainPem: string;
  publishedAt: string;
}

export const KMS_FIELDS = "id purpose environment keyId current status serialNumber subject notBefore notAfter fingerprintSha256 pem chainPem publishedAt";

export const LIST_KMS = `query($environment: Environment!, $purpose: KmsCertificatePurpose) {
  kmsCertificates(environment: $environment, purpose: $purpose) { ${KMS_FIELDS} }
}`;

export const ROTATE_KMS = `mutation($environment: Environment!, $purpose: KmsCertificatePurpose!, $validityDays: Int) {
  rotateKmsCertificate(environment: $environment, purpose: $purpose, validityDays: $validityDays) { ${KMS_FIELDS} }
}`;

export const RETIRE_KMS = `mutation($id: ID!) { retireKmsCertificate(id: $id) { ${KMS_FIELDS} } }`;

export async function listKms(
  server: TestServer,
  environment: "MTF" | "PRODUCTION",
  purpose: KmsCertificateView["purpose"] | null,
  token: string,
): Promise<KmsCertificateView[]> {
  const data = await server.ok<{ kmsCertificates: KmsCertificateView[] }>(LIST_KMS, { environment, purpose }, token);
  return data.kmsCertificates;
}

/** The stored row (with the key label, which the API does not show). */
export async function kmsRow(server: TestServer, id: string): Promise<KmsCertificate> {
  return server.app.db.manager.findOneOrFail(KmsCertificate, { where: { id } });
}
