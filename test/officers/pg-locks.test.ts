/**
 * On PostgreSQL mutations commit concurrently (docs/sequencer.md): the
 * invariants that one commit at a time used to give hold by narrow locks
 * (src/db/locks.ts). Each case races the same change and expects one winner
 * and clear refusals, never a unique violation surfacing as INTERNAL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { csrPem } from "../support/csr.js";
import { available } from "../support/deps.js";
import { addOperator } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { REQUEST } from "../delegations/helpers.js";
import { SUBMIT } from "../notifications/helpers.js";
import { CREATE_ORGANIZATION, DEACTIVATE_OFFICER, freshEmail } from "./helpers.js";

const postgres = await available("postgres");

describe.skipIf(!postgres)("invariants under concurrent mutations on PostgreSQL", () => {
  let server: TestServer;
  let participant: TestOrganization;

  beforeAll(async () => {
    server = await startTestServer({ db: "postgres" });
    participant = await createOrganization(server, { officerCount: 2 });
  });
  afterAll(async () => {
    await server?.close();
  });

  const outcomes = (results: Array<{ errors?: ReadonlyArray<{ extensions?: Record<string, unknown> }> }>) =>
    results.map((r) => (r.errors ? `${String(r.errors[0]!.extensions?.code)}/${String(r.errors[0]!.extensions?.reason)}` : "OK")).sort();

  it("should accept one of eight concurrent submissions of one key and refuse the others with KEY_REUSE", async () => {
    const pem = await csrPem(participant, `Race ${Math.random().toString(36).slice(2, 8)}`);
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        server.gql(SUBMIT, { input: { organizationId: participant.id, kind: "MTLS_CLIENT", environment: "MTF", pem } }, participant.officers[0]!.token),
      ),
    );
    expect(outcomes(results)).toEqual(["BAD_USER_INPUT/KEY_REUSE", ...Array(6).fill("BAD_USER_INPUT/KEY_REUSE"), "OK"].sort());
  });

  it("should create one of eight concurrent organizations of one name and refuse the others with NAME_TAKEN", async () => {
    const name = `Race Bank ${Math.random().toString(36).slice(2, 8)}`;
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        server.gql(CREATE_ORGANIZATION, { input: { name, kind: "MSP", contactEmail: "pki@race.example", country: "GB" } }, server.operatorToken),
      ),
    );
    expect(outcomes(results)).toEqual([...Array(7).fill("CONFLICT/NAME_TAKEN"), "OK"].sort());
  });

  it("should open one of eight concurrent delegations for one pair and refuse the others with DELEGATION_EXISTS", async () => {
    const msp = await createOrganization(server, { officerCount: 0, kind: "MSP" });
    const input = { participantId: participant.id, mspId: msp.id, kinds: ["MTLS_CLIENT"], environment: "MTF", note: null };
    const results = await Promise.all(Array.from({ length: 8 }, () => server.gql(REQUEST, { input }, server.operatorToken)));
    const refused = outcomes(results).filter((o) => o !== "OK");
    expect(outcomes(results).filter((o) => o === "OK")).toHaveLength(1);
    expect(new Set(refused.map((o) => o.split("/")[1]))).toEqual(new Set(["DELEGATION_EXISTS"]));
  });

  it("should leave one active operator when the last two deactivate each other at the same time", async () => {
    const first = await addOperator(server, freshEmail("op-a"));
    const second = await addOperator(server, freshEmail("op-b"));
    // Three operators: the bootstrap one goes first, then the other two race.
    const { me } = await server.ok<{ me: { officer: { id: string } } }>(`{ me { officer { id } } }`);
    await server.ok(DEACTIVATE_OFFICER, { id: me.officer.id }, first.token);
    const results = await Promise.all([
      server.gql(DEACTIVATE_OFFICER, { id: second.id }, first.token),
      server.gql(DEACTIVATE_OFFICER, { id: first.id }, second.token),
    ]);
    const active = (await server.app.db.dataSource.query(`SELECT id FROM officers WHERE role = 'KMS_OPERATOR' AND status = 'ACTIVE'`)) as unknown[];
    expect(active).toHaveLength(1);
    // The loser either saw one operator left, or was itself deactivated first (its token no longer counts).
    expect(outcomes(results)[0]).toBe("OK");
    expect(["PRECONDITION_FAILED/LAST_OPERATOR", "UNAUTHENTICATED/UNAUTHENTICATED", "FORBIDDEN/FORBIDDEN"]).toContain(outcomes(results)[1]);
  });
});
