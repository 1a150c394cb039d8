import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import type { TestOrganization } from "../support/organizations.js";
import type { TestServer } from "../support/server.js";

const crypto = webcrypto as unknown as Crypto;

/** A PKCS#10 request made in-process (no openssl needed), with a fresh P-256 key. */
export async function csrPem(org: Pick<TestOrganization, "name" | "country">, cn: string): Promise<string> {
  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"])) as CryptoKeyPair;
  const request = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: [{ C: [org.country] }, { O: [org.name] }, { CN: [cn] }], keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } },
    crypto,
  );
  return request.toString("pem");
}

/** Submitted by the organization's first officer and signed in MTF by the operator; answers the certificate id. */
export async function issueMtf(server: TestServer, org: TestOrganization, cn: string, opts: { kind?: string; validityDays?: number } = {}): Promise<string> {
  const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
    `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
    { input: { organizationId: org.id, kind: opts.kind ?? "MTLS_CLIENT", environment: "MTF", pem: await csrPem(org, cn) } },
    org.officers[0]!.token,
  );
  const { signCsr } = await server.ok<{ signCsr: { id: string } }>(`mutation($id: ID!, $days: Int) { signCsr(input: { csrId: $id, validityDays: $days }) { id } }`, {
    id: submitCsr.id,
    days: opts.validityDays ?? 365,
  });
  return signCsr.id;
}
