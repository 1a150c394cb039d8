/**
 * What an MSP may do for a participant, cell by cell: every state of the
 * delegation × every kind of viewer × every action, against the table below.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type GraphQLResponse, type TestServer } from "../support/server.js";
import { COMPROMISE, csrFor, expectError, issue, RENEW, SUBMIT } from "../certificates/helpers.js";
import { activeDelegation, APPROVE, DECLINE, requestDelegation, REVOKE_DELEGATION } from "./helpers.js";
import { lastNotificationId, notificationIdWhere, subscribeNotifications } from "./subscriptions.js";

const hasOpenssl = await available("openssl");

/**
 * The delegation covers MTLS_CLIENT in MTF; every action is on the
 * participant's MTLS_CLIENT key material in MTF.
 *   submit      submitCsr for the participant                  OK or the error code
 *   renew       renewCertificate of a participant certificate   OK or the error code
 *   compromise  reportKeyCompromise of a participant certificate OK or the error code
 *   read        certificate(id) and certificateSigningRequest(id): OK (both returned) or null (both null)
 *   download    GET /certificates/<id>.pem: the HTTP status
 *   subscribe   Subscription.notifications: whether the participant's CSR_SUBMITTED arrives
 * "other-msp" is an MSP with an active delegation from another participant.
 */
const EXPECTED = `
state     actor        submit     renew      compromise  read  download  subscribe
none      msp          NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
none      participant  OK         OK         OK          OK    200       receives
none      other-msp    NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
none      operator     FORBIDDEN  FORBIDDEN  OK          OK    200       receives
pending   msp          NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
pending   participant  OK         OK         OK          OK    200       receives
pending   other-msp    NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
pending   operator     FORBIDDEN  FORBIDDEN  OK          OK    200       receives
active    msp          OK         OK         OK          OK    200       receives
active    participant  OK         OK         OK          OK    200       receives
active    other-msp    NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
active    operator     FORBIDDEN  FORBIDDEN  OK          OK    200       receives
declined  msp          NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
declined  participant  OK         OK         OK          OK    200       receives
declined  other-msp    NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
declined  operator     FORBIDDEN  FORBIDDEN  OK          OK    200       receives
revoked   msp          NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
revoked   participant  OK         OK         OK          OK    200       receives
revoked   other-msp    NOT_FOUND  NOT_FOUND  NOT_FOUND   null  404       silent
revoked   operator     FORBIDDEN  FORBIDDEN  OK          OK    200       receives
`;

type State = "none" | "pending" | "active" | "declined" | "revoked";
type Actor = "msp" | "participant" | "other-msp" | "operator";
const ACTORS: Actor[] = ["msp", "participant", "other-msp", "operator"];
const table = EXPECTED.trim()
  .split("\n")
  .map((line) => line.trim().split(/\s+/));
const HEADER = table[0]!;
const rowsOf = (state: State) => table.slice(1).filter((row) => row[0] === state);

const code = (result: GraphQLResponse<unknown>) => (result.errors?.length ? String(result.errors[0]!.extensions?.code) : "OK");

describe.skipIf(!hasOpenssl)("the delegation matrix", () => {
  let server: TestServer;
  let otherMsp: TestOrganization;
  let tmp: ReturnType<typeof makeTempDir>;

  beforeAll(async () => {
    tmp = makeTempDir("kp-delegation-matrix-");
    server = await startTestServer();
    otherMsp = await createOrganization(server, { kind: "MSP", country: "GB" });
    const elsewhere = await createOrganization(server, { country: "DE" });
    await activeDelegation(server, elsewhere, otherMsp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
  });
  afterAll(async () => {
    try {
      await server?.close();
    } finally {
      tmp?.cleanup();
    }
  });

  async function delegationIn(state: State, participant: TestOrganization, msp: TestOrganization): Promise<void> {
    if (state === "none") return;
    const requested = await requestDelegation(server, participant, msp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
    if (state === "pending") return;
    if (state === "declined") {
      await server.ok(DECLINE, { id: requested.id }, participant.officers[1]!.token);
      return;
    }
    await server.ok(APPROVE, { id: requested.id }, participant.officers[0]!.token);
    if (state === "revoked") await server.ok(REVOKE_DELEGATION, { id: requested.id }, participant.officers[1]!.token);
  }

  for (const state of ["none", "pending", "active", "declined", "revoked"] as State[]) {
    it(`should give each viewer exactly the access in the table when the delegation is ${state}`, async () => {
      const participant = await createOrganization(server, { country: "IT" });
      const msp = await createOrganization(server, { kind: "MSP", country: "GB" });
      await delegationIn(state, participant, msp);
      const tokens: Record<Actor, string> = {
        msp: msp.officers[0]!.token,
        participant: participant.officers[0]!.token,
        "other-msp": otherMsp.officers[0]!.token,
        operator: server.operatorToken,
      };
      const target = await issue(server, tmp.path, participant);
      const { certificate } = await server.ok<{ certificate: { csr: { id: string } } }>(`query($id: ID!) { certificate(id: $id) { csr { id } } }`, { id: target.id });

      const actual: string[][] = [];
      for (const actor of ACTORS) {
        const token = tokens[actor];
        const submit = code(
          await server.gql(SUBMIT, { input: { organizationId: participant.id, kind: "MTLS_CLIENT", environment: "MTF", pem: csrFor(tmp.path, participant, `Submitted by ${actor}`).pem } }, token),
        );
        const renew = code(await server.gql(RENEW, { input: { certificateId: target.id, pem: csrFor(tmp.path, participant, `Renewed by ${actor}`).pem } }, token));
        const victim = await issue(server, tmp.path, participant);
        const compromise = code(await server.gql(COMPROMISE, { id: victim.id }, token));
        const read = await server.ok<{ certificate: { id: string } | null; certificateSigningRequest: { id: string } | null }>(
          `query($c: ID!, $r: ID!) { certificate(id: $c) { id } certificateSigningRequest(id: $r) { id } }`,
          { c: target.id, r: certificate.csr.id },
          token,
        );
        const readCell = read.certificate && read.certificateSigningRequest ? "OK" : !read.certificate && !read.certificateSigningRequest ? "null" : "mixed";
        const download = (await fetch(`${server.url}/certificates/${target.id}.pem`, { headers: { authorization: `Bearer ${token}` } })).status;
        actual.push([state, actor, submit, renew, compromise, readCell, String(download), "?"]);
      }

      // Subscriptions: the participant's CSR_SUBMITTED, then one notification each subscriber surely sees (an officer
      // registered in its own organization). Delivery is in order, so once that one has arrived the first would have too.
      const after = await lastNotificationId(server);
      const subscriptions = ACTORS.map((actor) => subscribeNotifications(server, tokens[actor], after));
      try {
        const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
          SUBMIT,
          { input: { organizationId: participant.id, kind: "MTLS_CLIENT", environment: "MTF", pem: csrFor(tmp.path, participant, "Watched").pem } },
          participant.officers[1]!.token,
        );
        const event = await notificationIdWhere(server, "csrId", submitCsr.id, "CSR_SUBMITTED");
        const sentinel: Record<Actor, string> = { msp: "", participant: "", "other-msp": "", operator: "" };
        for (const [actor, org] of [["msp", msp], ["other-msp", otherMsp], ["participant", participant]] as Array<[Actor, TestOrganization]>) {
          const officer = await addOfficer(server, org.id, `sentinel-${state}-${actor}-${Math.random().toString(36).slice(2, 8)}@example.com`);
          sentinel[actor] = await notificationIdWhere(server, "officerId", officer.id, "OFFICER_REGISTERED");
        }
        sentinel.operator = sentinel.participant;
        await Promise.all(ACTORS.map((actor, i) => subscriptions[i]!.waitFor(sentinel[actor])));
        ACTORS.forEach((actor, i) => {
          actual[i]![7] = subscriptions[i]!.has(event) ? "receives" : "silent";
        });
      } finally {
        for (const s of subscriptions) s.dispose();
      }

      expect([HEADER, ...actual]).toEqual([HEADER, ...rowsOf(state)]);
    });
  }

  it("should confine an active delegation to its kinds and its environment", async () => {
    const participant = await createOrganization(server, { country: "AT" });
    const msp = await createOrganization(server, { kind: "MSP", country: "GB" });
    await activeDelegation(server, participant, msp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
    const token = msp.officers[0]!.token;
    const submit = (kind: string, environment: string) =>
      server.gql(SUBMIT, { input: { organizationId: participant.id, kind, environment, pem: csrFor(tmp.path, participant, "Outside").pem } }, token);
    expectError(await submit("SIGNING", "MTF"), "FORBIDDEN", "DELEGATION_NOT_ACTIVE");
    expectError(await submit("MTLS_CLIENT", "PRODUCTION"), "FORBIDDEN", "DELEGATION_NOT_ACTIVE");
    const signing = await issue(server, tmp.path, participant, { kind: "SIGNING" });
    const { certificate } = await server.ok<{ certificate: null }>(`query($id: ID!) { certificate(id: $id) { id } }`, { id: signing.id }, token);
    expect(certificate).toBeNull();
    expectError(await server.gql(COMPROMISE, { id: signing.id }, token), "NOT_FOUND", "NOT_FOUND");
    const { certificates } = await server.ok<{ certificates: { nodes: Array<{ id: string; kind: string }> } }>(
      `query($f: CertificateFilter) { certificates(filter: $f) { nodes { id kind } } }`,
      { f: { organizationId: participant.id } },
      token,
    );
    expect(certificates.nodes.map((c) => c.kind)).not.toContain("SIGNING");
  });

  it("should let an MSP certificate be issued while the delegation is active and refuse to sign its request once revoked", async () => {
    const participant = await createOrganization(server, { country: "BE" });
    const msp = await createOrganization(server, { kind: "MSP", country: "GB" });
    const delegation = await activeDelegation(server, participant, msp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
    const issued = await issue(server, tmp.path, participant, { token: msp.officers[0]!.token });
    const { certificate } = await server.ok<{ certificate: { id: string; csr: { submittedBy: { id: string } } } }>(
      `query($id: ID!) { certificate(id: $id) { id csr { submittedBy { id } } } }`,
      { id: issued.id },
      participant.officers[0]!.token,
    );
    expect(certificate.csr.submittedBy.id).toBe(msp.officers[0]!.id);
    const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
      SUBMIT,
      { input: { organizationId: participant.id, kind: "MTLS_CLIENT", environment: "MTF", pem: csrFor(tmp.path, participant, "Late").pem } },
      msp.officers[1]!.token,
    );
    await server.ok(REVOKE_DELEGATION, { id: delegation.id }, participant.officers[0]!.token);
    expectError(await server.gql(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { id } }`, { id: submitCsr.id }, server.operatorToken), "PRECONDITION_FAILED", "DELEGATION_NOT_ACTIVE");
    // The participant still has its certificate; the MSP no longer sees it.
    expect((await fetch(`${server.url}/certificates/${issued.id}.pem`, { headers: { authorization: `Bearer ${msp.officers[0]!.token}` } })).status).toBe(404);
    expect((await fetch(`${server.url}/certificates/${issued.id}.pem`, { headers: { authorization: `Bearer ${participant.officers[0]!.token}` } })).status).toBe(200);
  });
});
