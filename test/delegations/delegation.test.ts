import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { csrFor, expectError, outcome, SUBMIT } from "../certificates/helpers.js";
import { activeDelegation, APPROVE, DECLINE, type DelegationView, REQUEST, requestDelegation, REVOKE_DELEGATION } from "./helpers.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`delegation lifecycle on ${db}`, () => {
    let server: TestServer;
    let participant: TestOrganization;
    let msp: TestOrganization;
    let otherMsp: TestOrganization;
    let otherParticipant: TestOrganization;
    let tmp: ReturnType<typeof makeTempDir>;
    const sql = (text: string) => (db === "postgres" ? text : text.replace(/\$\d+/g, "?"));

    beforeAll(async () => {
      tmp = makeTempDir("kp-delegation-");
      server = await startTestServer({ db });
      participant = await createOrganization(server, { country: "ES" });
      otherParticipant = await createOrganization(server, { country: "PT" });
      msp = await createOrganization(server, { kind: "MSP", country: "GB" });
      otherMsp = await createOrganization(server, { kind: "MSP", country: "GB" });
    });
    afterAll(async () => {
      try {
        await server?.close();
      } finally {
        tmp?.cleanup();
      }
    });

    const input = (overrides: Record<string, unknown> = {}) => ({
      input: { participantId: participant.id, mspId: msp.id, kinds: ["MTLS_CLIENT", "SIGNING"], environment: "PRODUCTION", ...overrides },
    });

    it("should let only operators request a delegation, from a PARTICIPANT to an MSP, for distinct kinds and a short note", async () => {
      expectError(await server.gql(REQUEST, input(), participant.officers[0]!.token), "FORBIDDEN", "FORBIDDEN");
      expectError(await server.gql(REQUEST, input(), msp.officers[0]!.token), "FORBIDDEN", "FORBIDDEN");
      expectError(await server.gql(REQUEST, input(), null), "UNAUTHENTICATED", "UNAUTHENTICATED");
      expectError(await server.gql(REQUEST, input({ participantId: msp.id, mspId: otherMsp.id }), server.operatorToken), "BAD_USER_INPUT", "INVALID_PARTICIPANT");
      expectError(await server.gql(REQUEST, input({ mspId: otherParticipant.id }), server.operatorToken), "BAD_USER_INPUT", "INVALID_MSP");
      expectError(await server.gql(REQUEST, input({ kinds: [] }), server.operatorToken), "BAD_USER_INPUT", "INVALID_KINDS");
      expectError(await server.gql(REQUEST, input({ kinds: ["SIGNING", "SIGNING"] }), server.operatorToken), "BAD_USER_INPUT", "INVALID_KINDS");
      expectError(await server.gql(REQUEST, input({ note: "n".repeat(1001) }), server.operatorToken), "BAD_USER_INPUT", "INVALID_NOTE");
      expectError(await server.gql(REQUEST, input({ participantId: "00000000-0000-4000-8000-000000000000" }), server.operatorToken), "NOT_FOUND", "NOT_FOUND");
      const { count } = (await server.app.db.dataSource.query(`SELECT COUNT(*) AS count FROM delegations`))[0] as { count: number | string };
      expect(Number(count)).toBe(0);
    });

    it("should start PENDING_APPROVAL, notify both organizations and ask the participant to confirm", async () => {
      const d = await requestDelegation(server, participant, msp, { kinds: ["MTLS_CLIENT", "SIGNING"], environment: "PRODUCTION", note: "Acme Processing runs our switch" });
      expect(d).toMatchObject({
        status: "PENDING_APPROVAL",
        kinds: ["MTLS_CLIENT", "SIGNING"],
        environment: "PRODUCTION",
        note: "Acme Processing runs our switch",
        participant: { id: participant.id },
        msp: { id: msp.id },
        decidedBy: null,
        decidedAt: null,
      });
      const { me } = await server.ok<{ me: { officer: { id: string } } }>(`{ me { officer { id } } }`);
      expect(d.requestedBy.id).toBe(me.officer.id);
      const rows = (await server.app.db.dataSource.query(
        sql(`SELECT type, "organizationId", "secondOrganizationId", environment, message FROM notifications WHERE "delegationId" = $1`),
        [d.id],
      )) as Array<Record<string, string>>;
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ type: "DELEGATION_REQUESTED", organizationId: participant.id, secondOrganizationId: msp.id, environment: "PRODUCTION" });
      expect(rows[0]!.message).toMatch(/must approve or decline/);
      // Pending grants nothing: the MSP cannot act for the participant yet.
      const { pem } = csrFor(tmp.path, participant, "Too Early");
      expectError(
        await server.gql(SUBMIT, { input: { organizationId: participant.id, kind: "SIGNING", environment: "PRODUCTION", pem } }, msp.officers[0]!.token),
        "NOT_FOUND",
        "NOT_FOUND",
      );
      await server.ok(REVOKE_DELEGATION, { id: d.id });
    });

    it("should keep one open delegation per participant, MSP and environment, even when requests race", async () => {
      const results = await Promise.all(Array.from({ length: 10 }, () => server.gql(REQUEST, input({ environment: "MTF" }), server.operatorToken)));
      const outcomes = results.map(outcome);
      expect(outcomes.filter((o) => o === "OK")).toHaveLength(1);
      expect(outcomes.filter((o) => o === "CONFLICT/DELEGATION_EXISTS")).toHaveLength(9);
      const open = results.find((r) => !r.errors)!.data as { requestDelegation: DelegationView };
      await server.ok(APPROVE, { id: open.requestDelegation.id }, participant.officers[1]!.token);
      expectError(await server.gql(REQUEST, input({ environment: "MTF" }), server.operatorToken), "CONFLICT", "DELEGATION_EXISTS");
      // Another MSP or another environment is another delegation.
      const second = await requestDelegation(server, participant, otherMsp, { environment: "MTF" });
      await server.ok(REVOKE_DELEGATION, { id: second.id });
      await server.ok(REVOKE_DELEGATION, { id: open.requestDelegation.id }, participant.officers[0]!.token);
      // Once it is closed, a new one may be requested.
      const again = await requestDelegation(server, participant, msp, { environment: "MTF" });
      await server.ok(REVOKE_DELEGATION, { id: again.id });
    });

    it("should let only an officer of the participant approve or decline, hide it from other tenants, and decide once", async () => {
      const d = await requestDelegation(server, participant, msp);
      expectError(await server.gql(APPROVE, { id: d.id }, msp.officers[0]!.token), "FORBIDDEN", "FORBIDDEN");
      expectError(await server.gql(APPROVE, { id: d.id }, server.operatorToken), "FORBIDDEN", "FORBIDDEN");
      expectError(await server.gql(APPROVE, { id: d.id }, otherMsp.officers[0]!.token), "NOT_FOUND", "NOT_FOUND");
      expectError(await server.gql(DECLINE, { id: d.id }, otherParticipant.officers[0]!.token), "NOT_FOUND", "NOT_FOUND");
      expectError(await server.gql(DECLINE, { id: d.id }, msp.officers[1]!.token), "FORBIDDEN", "FORBIDDEN");

      const results = await Promise.all([
        server.gql<{ approveDelegation: DelegationView }>(APPROVE, { id: d.id }, participant.officers[0]!.token),
        server.gql(DECLINE, { id: d.id, reason: "changed our mind" }, participant.officers[1]!.token),
        server.gql(APPROVE, { id: d.id }, participant.officers[1]!.token),
      ]);
      const outcomes = results.map(outcome);
      expect(outcomes.filter((o) => o === "OK")).toHaveLength(1);
      expect(outcomes.filter((o) => o === "CONFLICT/ALREADY_DECIDED")).toHaveLength(2);
      const { delegations } = await server.ok<{ delegations: DelegationView[] }>(`{ delegations { id status decidedBy { id } decidedAt } }`, {}, participant.officers[0]!.token);
      const decided = delegations.find((x) => x.id === d.id)!;
      expect(["ACTIVE", "DECLINED"]).toContain(decided.status);
      expect(decided.decidedBy).not.toBeNull();
      expect(decided.decidedAt).toBe(server.clock.now().toISOString());
      await server.ok(REVOKE_DELEGATION, { id: d.id }).catch(() => undefined);
    });

    it("should record a decline with its reason and let nobody approve it afterwards", async () => {
      const d = await requestDelegation(server, participant, msp);
      const { declineDelegation } = await server.ok<{ declineDelegation: DelegationView }>(DECLINE, { id: d.id, reason: "We run our own keys" }, participant.officers[1]!.token);
      expect(declineDelegation).toMatchObject({ status: "DECLINED", declineReason: "We run our own keys", decidedBy: { id: participant.officers[1]!.id } });
      expectError(await server.gql(APPROVE, { id: d.id }, participant.officers[0]!.token), "CONFLICT", "ALREADY_DECIDED");
      expectError(await server.gql(REVOKE_DELEGATION, { id: d.id }, participant.officers[0]!.token), "CONFLICT", "ALREADY_DECIDED");
    });

    it("should let the participant's officers and operators revoke, not the MSP, and only once", async () => {
      const byParticipant = await activeDelegation(server, participant, msp);
      expectError(await server.gql(REVOKE_DELEGATION, { id: byParticipant.id }, msp.officers[0]!.token), "FORBIDDEN", "FORBIDDEN");
      expectError(await server.gql(REVOKE_DELEGATION, { id: byParticipant.id }, otherMsp.officers[0]!.token), "NOT_FOUND", "NOT_FOUND");
      const { revokeDelegation } = await server.ok<{ revokeDelegation: DelegationView }>(REVOKE_DELEGATION, { id: byParticipant.id }, participant.officers[1]!.token);
      expect(revokeDelegation).toMatchObject({ status: "REVOKED", revokedBy: { id: participant.officers[1]!.id }, revokedAt: server.clock.now().toISOString() });
      expect(revokeDelegation.decidedBy).toEqual({ id: participant.officers[0]!.id });
      expectError(await server.gql(REVOKE_DELEGATION, { id: byParticipant.id }, server.operatorToken), "CONFLICT", "ALREADY_REVOKED");

      const byOperator = await activeDelegation(server, participant, msp);
      const revoked = await server.ok<{ revokeDelegation: DelegationView }>(REVOKE_DELEGATION, { id: byOperator.id });
      expect(revoked.revokeDelegation.status).toBe("REVOKED");
      const types = (await server.app.db.dataSource.query(sql(`SELECT type FROM notifications WHERE "delegationId" = $1 ORDER BY id`), [byOperator.id])) as Array<{ type: string }>;
      expect(types.map((t) => t.type)).toEqual(["DELEGATION_REQUESTED", "DELEGATION_APPROVED", "DELEGATION_REVOKED"]);
    });

    it("should publish access.revoked with the delegation id once the revocation has committed", async () => {
      const d = await activeDelegation(server, participant, msp, { environment: "PRODUCTION", kinds: ["ENCRYPTION"] });
      const events: Array<{ delegationId?: string }> = [];
      const unsubscribe = server.app.bus.subscribe("access.revoked", (e) => events.push(e));
      try {
        await server.ok(REVOKE_DELEGATION, { id: d.id }, participant.officers[0]!.token);
        const deadline = Date.now() + 2000;
        while (!events.some((e) => e.delegationId === d.id) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
        expect(events.filter((e) => e.delegationId === d.id)).toHaveLength(1);
      } finally {
        unsubscribe();
      }
    });

    it("should list what each viewer may see: the participant what it granted, the MSP what it received, operators everything", async () => {
      const granted = await activeDelegation(server, otherParticipant, otherMsp, { environment: "PRODUCTION" });
      const pending = await requestDelegation(server, otherParticipant, msp, { environment: "PRODUCTION", kinds: ["SIGNING"] });
      const ids = async (token: string, status?: string) =>
        (await server.ok<{ delegations: Array<{ id: string }> }>(`query($s: DelegationStatus) { delegations(status: $s) { id } }`, { s: status ?? null }, token)).delegations.map((x) => x.id);

      expect(await ids(otherParticipant.officers[0]!.token)).toEqual(expect.arrayContaining([granted.id, pending.id]));
      expect(await ids(otherParticipant.officers[0]!.token, "ACTIVE")).toEqual([granted.id]);
      expect(await ids(otherMsp.officers[0]!.token)).toContain(granted.id);
      expect(await ids(otherMsp.officers[0]!.token)).not.toContain(pending.id);
      expect(await ids(msp.officers[0]!.token, "PENDING_APPROVAL")).toEqual([pending.id]);
      expect(await ids(participant.officers[0]!.token)).not.toContain(granted.id);
      expect(await ids(server.operatorToken)).toEqual(expect.arrayContaining([granted.id, pending.id]));

      // Organization.delegations, as far as the viewer may see them; the participant now sees its MSP, linked by an active delegation.
      const orgDelegations = async (orgId: string, token: string) =>
        (await server.ok<{ organization: { delegations: Array<{ id: string; participant: { id: string }; msp: { id: string } }> } | null }>(
          `query($id: ID!) { organization(id: $id) { delegations { id participant { id } msp { id } } } }`,
          { id: orgId },
          token,
        )).organization;
      expect((await orgDelegations(otherParticipant.id, otherParticipant.officers[0]!.token))!.delegations.map((x) => x.id)).toEqual(
        expect.arrayContaining([granted.id, pending.id]),
      );
      expect((await orgDelegations(otherMsp.id, otherParticipant.officers[0]!.token))!.delegations.map((x) => x.id)).toEqual([granted.id]);
      expect((await orgDelegations(otherParticipant.id, otherMsp.officers[0]!.token))!.delegations.map((x) => x.id)).toEqual([granted.id]);
      expect(await orgDelegations(otherParticipant.id, msp.officers[0]!.token)).toBeNull();
      await server.ok(REVOKE_DELEGATION, { id: granted.id });
      await server.ok(REVOKE_DELEGATION, { id: pending.id });
      expect(await orgDelegations(otherMsp.id, otherParticipant.officers[0]!.token)).toBeNull();
    });

    it("should audit every delegation attempt, the refused ones with their error code", async () => {
      const d = await requestDelegation(server, participant, msp, { environment: "PRODUCTION", kinds: ["SIGNING"] });
      await server.gql(APPROVE, { id: d.id }, msp.officers[0]!.token);
      await server.ok(APPROVE, { id: d.id }, participant.officers[0]!.token);
      await server.gql(REVOKE_DELEGATION, { id: d.id }, msp.officers[0]!.token);
      await server.ok(REVOKE_DELEGATION, { id: d.id }, participant.officers[0]!.token);
      const rows = (await server.app.db.dataSource.query(sql(`SELECT action, outcome, "organizationId" FROM audit_events WHERE "targetId" = $1 ORDER BY seq`), [d.id])) as Array<{
        action: string;
        outcome: string;
        organizationId: string;
      }>;
      expect(rows.map((r) => `${r.action} ${r.outcome}`)).toEqual([
        "delegation.request SUCCESS",
        "delegation.approve FORBIDDEN",
        "delegation.approve SUCCESS",
        "delegation.revoke FORBIDDEN",
        "delegation.revoke SUCCESS",
      ]);
      expect(new Set(rows.map((r) => r.organizationId))).toEqual(new Set([participant.id]));
    });
  });
}
