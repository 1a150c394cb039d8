/**
 * Helpers for the revocation and delegation suites: certificates issued
 * through the API with keys made by openssl, CRLs fetched over HTTP and read
 * by openssl, and error shapes.
 */
import { expect } from "vitest";
import { generateKey, makeCsr, openssl, writeFile, type TestKey } from "../pki/helpers.js";
import { approveAsSecondOperator } from "../support/dual-control.js";
import { type TestOrganization } from "../support/organizations.js";
import type { GraphQLResponse, TestServer } from "../support/server.js";

export const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id status renewalOf { id } } }`;
export const RENEW = `mutation($input: RenewCertificateInput!) { renewCertificate(input: $input) { id status renewalOf { id } } }`;
export const SIGN = `mutation($id: ID!, $days: Int) { signCsr(input: { csrId: $id, validityDays: $days }) { id serialNumber notAfter pem status renewalOf { id } } }`;
export const COMPROMISE = `mutation($id: ID!, $note: String) { reportKeyCompromise(certificateId: $id, note: $note) { id status revokedAt revocationReason } }`;
export const REVOKE = `mutation($id: ID!, $reason: RevocationReason!) { revokeCertificate(certificateId: $id, reason: $reason) { id status revokedAt revocationReason } }`;
export const CERTIFICATE = `query($id: ID!) { certificate(id: $id) { id status revokedAt revocationReason renewalOf { id } renewedBy { id } } }`;

export interface Issued {
  id: string;
  serialNumber: string;
  notAfter: string;
  /** Private key file (openssl), and the certificate as a PEM file. */
  key: string;
  certFile: string;
}

let counter = 0;

/** A CSR for the organization's registered subject, with a new key of the given kind. */
export function csrFor(dir: string, org: Pick<TestOrganization, "name" | "country">, cn: string, keyKind: TestKey = "p256"): { key: string; pem: string } {
  const key = generateKey(dir, keyKind);
  return { key, pem: makeCsr(key, `/C=${org.country}/O=${org.name}/CN=${cn}`) };
}

/** Submits with `token` (an officer of the organization or a delegated MSP), signs as the operator. */
export async function issue(
  server: TestServer,
  dir: string,
  org: TestOrganization,
  opts: { token?: string; kind?: string; environment?: string; validityDays?: number; keyKind?: TestKey } = {},
): Promise<Issued> {
  counter += 1;
  const { key, pem } = csrFor(dir, org, `Client ${counter}`, opts.keyKind);
  const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
    SUBMIT,
    { input: { organizationId: org.id, kind: opts.kind ?? "MTLS_CLIENT", environment: opts.environment ?? "MTF", pem } },
    opts.token ?? org.officers[0]!.token,
  );
  if (opts.environment === "PRODUCTION") await approveAsSecondOperator(server, submitCsr.id);
  const { signCsr } = await server.ok<{ signCsr: { id: string; serialNumber: string; notAfter: string; pem: string } }>(SIGN, {
    id: submitCsr.id,
    days: opts.validityDays ?? null,
  });
  return { id: signCsr.id, serialNumber: signCsr.serialNumber, notAfter: signCsr.notAfter, key, certFile: writeFile(dir, `${signCsr.id}.pem`, signCsr.pem) };
}

/** "CODE/REASON" of the only error, "OK" when there is none. */
export function outcome(result: GraphQLResponse<unknown>): string {
  if (!result.errors?.length) return "OK";
  const e = result.errors[0]!.extensions ?? {};
  return `${e.code}/${e.reason}`;
}

export function expectError(result: GraphQLResponse<unknown>, code: string, reason: string): void {
  expect(result.errors, `expected ${code}/${reason}, got ${JSON.stringify(result)}`).toHaveLength(1);
  expect(result.errors![0]!.extensions).toMatchObject({ code, reason });
}

export interface FetchedCrl {
  status: number;
  contentType: string | null;
  etag: string | null;
  /** PEM file written for openssl (label X509 CRL). */
  pemFile: string;
  /** `openssl crl -text` of it. */
  text: string;
  crlNumber: bigint;
}

/** GET /crl/<name>, DER, converted to PEM and read by openssl. */
export async function fetchCrl(server: TestServer, dir: string, name: string): Promise<FetchedCrl> {
  const res = await fetch(`${server.url}/crl/${name}`);
  expect(res.status, `GET /crl/${name}`).toBe(200);
  counter += 1;
  const derFile = writeFile(dir, `crl-${counter}.der`, new Uint8Array(await res.arrayBuffer()));
  const pemFile = `${dir}/crl-${counter}.pem`;
  openssl(["crl", "-inform", "DER", "-in", derFile, "-out", pemFile]);
  const text = openssl(["crl", "-in", pemFile, "-noout", "-text"]);
  const number = /X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text);
  if (!number) throw new Error(`no CRL number in:\n${text}`);
  return { status: res.status, contentType: res.headers.get("content-type"), etag: res.headers.get("etag"), pemFile, text, crlNumber: BigInt(number[1]!) };
}

/** The revoked serials of a CRL with their reasons (openssl's words, e.g. "Key Compromise"; "" when reasonCode is absent). */
export function crlEntries(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  const blocks = text.split(/Serial Number: /).slice(1);
  for (const block of blocks) {
    const serial = /^([0-9A-F]+)/.exec(block)![1]!.toLowerCase();
    const reason = /X509v3 CRL Reason Code:\s*\n\s*(.+)/.exec(block)?.[1]?.trim() ?? "";
    entries.set(serial, reason);
  }
  return entries;
}
