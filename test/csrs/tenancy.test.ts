/**
 * The authorization matrix for CSRs and certificates: every query, nested
 * field, mutation and download URL of that part of the API, as each kind of
 * viewer, with the exact expected outcome of each cell.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey, makeCsr, makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");

type Viewer = "anonymous" | "deactivated" | "revokedToken" | "ownOfficer" | "otherOfficer" | "mspOfficer" | "operator";
const VIEWERS: Viewer[] = ["anonymous", "deactivated", "revokedToken", "ownOfficer", "otherOfficer", "mspOfficer", "operator"];

/** OK: data returned; NULL: field answered null (invisible); EMPTY: list without the object; otherwise the error code or HTTP status. */
type Outcome = "OK" | "NULL" | "EMPTY" | "UNAUTHENTICATED" | "FORBIDDEN" | "NOT_FOUND" | "200" | "401" | "404";

// prettier-ignore
const MATRIX: Record<string, Record<Viewer, Outcome>> = {
  //                              anonymous          deactivated        revokedToken       ownOfficer  otherOfficer   mspOfficer     operator
  certificateProfiles:         { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "OK",        mspOfficer: "OK",        operator: "OK" },
  caChain:                     { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "OK",        mspOfficer: "OK",        operator: "OK" },
  certificate:                 { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "NULL",      mspOfficer: "NULL",      operator: "OK" },
  certificateBySerial:         { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "NULL",      mspOfficer: "NULL",      operator: "OK" },
  certificates:                { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "EMPTY",     mspOfficer: "EMPTY",     operator: "OK" },
  certificateSigningRequest:   { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "NULL",      mspOfficer: "NULL",      operator: "OK" },
  certificateSigningRequests:  { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "EMPTY",     mspOfficer: "EMPTY",     operator: "OK" },
  "Organization.certificates": { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "NULL",      mspOfficer: "NULL",      operator: "OK" },
  submitCsr:                   { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "NOT_FOUND", mspOfficer: "NOT_FOUND", operator: "FORBIDDEN" },
  renewCertificate:            { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "NOT_FOUND", mspOfficer: "NOT_FOUND", operator: "FORBIDDEN" },
  cancelCsr:                   { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "OK", otherOfficer: "NOT_FOUND", mspOfficer: "NOT_FOUND", operator: "FORBIDDEN" },
  signCsr:                     { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "FORBIDDEN", otherOfficer: "FORBIDDEN", mspOfficer: "FORBIDDEN", operator: "OK" },
  rejectCsr:                   { anonymous: "UNAUTHENTICATED", deactivated: "UNAUTHENTICATED", revokedToken: "UNAUTHENTICATED", ownOfficer: "FORBIDDEN", otherOfficer: "FORBIDDEN", mspOfficer: "FORBIDDEN", operator: "OK" },
  "GET /certificates/<id>.pem":       { anonymous: "401", deactivated: "401", revokedToken: "401", ownOfficer: "200", otherOfficer: "404", mspOfficer: "404", operator: "200" },
  "GET /certificates/<id>.der":       { anonymous: "401", deactivated: "401", revokedToken: "401", ownOfficer: "200", otherOfficer: "404", mspOfficer: "404", operator: "200" },
  "GET /certificates/<id>.p7b":       { anonymous: "401", deactivated: "401", revokedToken: "401", ownOfficer: "200", otherOfficer: "404", mspOfficer: "404", operator: "200" },
  "GET /certificates/<id>.chain.pem": { anonymous: "401", deactivated: "401", revokedToken: "401", ownOfficer: "200", otherOfficer: "404", mspOfficer: "404", operator: "200" },
};

describe.skipIf(!hasOpenssl)("who may see and do what with CSRs and certificates", () => {
  let server: TestServer;
  let org: TestOrganization;
  const tokens = {} as Record<Viewer, string | null>;
  const tmp = makeTempDir("kp-tenancy-");
  let cn = 0;

  const freshCsr = () => makeCsr(generateKey(tmp.path, "p256"), `/C=${org.country}/O=${org.name}/CN=Matrix ${++cn}`);

  async function pendingCsr(): Promise<string> {
    const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
      `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
      { input: { organizationId: org.id, kind: "SIGNING", environment: "MTF", pem: freshCsr() } },
      org.officers[0]!.token,
    );
    return submitCsr.id;
  }

  async function certificate(): Promise<{ id: string; serialNumber: string; csrId: string }> {
    const csrId = await pendingCsr();
    const { signCsr } = await server.ok<{ signCsr: { id: string; serialNumber: string } }>(
      `mutation($id: ID!) { signCsr(input: { csrId: $id }) { id serialNumber } }`,
      { id: csrId },
    );
    return { ...signCsr, csrId };
  }

  async function graphql(query: string, variables: Record<string, unknown>, token: string | null, pick: (data: Record<string, unknown>) => unknown): Promise<Outcome> {
    const result = await server.gql<Record<string, unknown>>(query, variables, token);
    const code = result.errors?.[0]?.extensions?.code;
    if (code) return code as Outcome;
    const value = pick(result.data!);
    if (value === null) return "NULL";
    if (Array.isArray(value)) return value.length === 0 ? "EMPTY" : "OK";
    return "OK";
  }

  const CELLS: Record<string, (token: string | null) => Promise<Outcome>> = {
    certificateProfiles: (t) => graphql(`{ certificateProfiles { kind } }`, {}, t, (d) => d.certificateProfiles),
    caChain: (t) => graphql(`{ caChain(environment: MTF) }`, {}, t, (d) => d.caChain),
    certificate: async (t) => graphql(`query($id: ID!) { certificate(id: $id) { id pem } }`, { id: (await shared).id }, t, (d) => d.certificate),
    certificateBySerial: async (t) =>
      graphql(`query($s: String!) { certificateBySerial(serialNumber: $s) { id } }`, { s: (await shared).serialNumber }, t, (d) => d.certificateBySerial),
    certificates: async (t) =>
      graphql(`query($f: CertificateFilter) { certificates(filter: $f) { nodes { id } } }`, { f: { organizationId: org.id } }, t, (d) => (d.certificates as { nodes: unknown[] }).nodes),
    certificateSigningRequest: async (t) =>
      graphql(`query($id: ID!) { certificateSigningRequest(id: $id) { id } }`, { id: (await shared).csrId }, t, (d) => d.certificateSigningRequest),
    certificateSigningRequests: async (t) =>
      graphql(`query($f: CsrFilter) { certificateSigningRequests(filter: $f) { nodes { id } } }`, { f: { organizationId: org.id } }, t, (d) => (d.certificateSigningRequests as { nodes: unknown[] }).nodes),
    "Organization.certificates": (t) =>
      graphql(`query($id: ID!) { organization(id: $id) { certificates { nodes { id } } } }`, { id: org.id }, t, (d) => d.organization),
    submitCsr: (t) =>
      graphql(`mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`, { input: { organizationId: org.id, kind: "SIGNING", environment: "MTF", pem: freshCsr() } }, t, (d) => d.submitCsr),
    renewCertificate: async (t) =>
      graphql(`mutation($input: RenewCertificateInput!) { renewCertificate(input: $input) { id } }`, { input: { certificateId: (await shared).id, pem: freshCsr() } }, t, (d) => d.renewCertificate),
    cancelCsr: async (t) => graphql(`mutation($id: ID!) { cancelCsr(csrId: $id) { status } }`, { id: await pendingCsr() }, t, (d) => d.cancelCsr),
    signCsr: async (t) => graphql(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { id } }`, { id: await pendingCsr() }, t, (d) => d.signCsr),
    rejectCsr: async (t) => graphql(`mutation($id: ID!) { rejectCsr(csrId: $id, reason: "matrix") { status } }`, { id: await pendingCsr() }, t, (d) => d.rejectCsr),
  };
  for (const ext of ["pem", "der", "p7b", "chain.pem"]) {
    CELLS[`GET /certificates/<id>.${ext}`] = async (t) => {
      const res = await fetch(`${server.url}/certificates/${(await shared).id}.${ext}`, { headers: t ? { authorization: `Bearer ${t}` } : {} });
      return String(res.status) as Outcome;
    };
  }

  let shared: Promise<{ id: string; serialNumber: string; csrId: string }>;

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { country: "IE", officerCount: 2 });
    const other = await createOrganization(server, { country: "IE" });
    const msp = await createOrganization(server, { kind: "MSP", country: "IE" });
    const leaving = await addOfficer(server, org.id, "leaving@example.com");
    await server.ok(`mutation($id: ID!) { deactivateOfficer(officerId: $id) { id } }`, { id: leaving.id });
    const { createApiToken } = await server.ok<{ createApiToken: { id: string; token: string } }>(
      `mutation($id: ID!) { createApiToken(officerId: $id, label: "to revoke") { id token } }`,
      { id: org.officers[1]!.id },
      org.officers[1]!.token,
    );
    await server.ok(`mutation($id: ID!) { revokeApiToken(tokenId: $id) }`, { id: createApiToken.id });
    Object.assign(tokens, {
      anonymous: null,
      deactivated: leaving.token,
      revokedToken: createApiToken.token,
      ownOfficer: org.officers[0]!.token,
      otherOfficer: other.officers[0]!.token,
      mspOfficer: msp.officers[0]!.token,
      operator: server.operatorToken,
    });
    shared = certificate();
    await shared;
  });
  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it("should cover every cell of the matrix", () => {
    expect(Object.keys(CELLS).sort()).toEqual(Object.keys(MATRIX).sort());
  });

  for (const [operation, row] of Object.entries(MATRIX)) {
    it(`should answer ${operation} as the matrix says for each viewer`, async () => {
      const actual = {} as Record<Viewer, Outcome>;
      for (const viewer of VIEWERS) {
        // Renewal consumes the shared certificate's pending slot: use a fresh certificate for each successful renewal.
        if (operation === "renewCertificate" && row[viewer] === "OK") shared = certificate();
        actual[viewer] = await CELLS[operation]!(tokens[viewer]);
      }
      expect(actual).toEqual(row);
    });
  }
});
