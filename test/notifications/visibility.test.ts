import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertificateKind, Environment, OfficerStatus, OrganizationKind, Role } from "../../src/kernel/domain.js";
import { Notification, NotificationAudience } from "../../src/notifications/notification.entity.js";
import { NotificationStore } from "../../src/notifications/notification.store.js";
import { AccessPolicy, type DelegationGrant } from "../../src/policy.js";
import type { Viewer } from "../../src/viewer.js";
import { startTestServer, type TestServer } from "../support/server.js";

/**
 * The notification visibility rules are written once (policy.ts's
 * visibleNotificationPredicates): the in-memory check the live stream uses
 * (canSeeNotification) and the SQL filter of queries and replay
 * (NotificationStore.visibleAfter) must admit the same rows, case by case.
 */
const ORGS = ["P1", "P2", "MSP", null] as const;
const ROWS = ORGS.flatMap((organizationId) =>
  (["MSP", "P2", null] as const).flatMap((secondOrganizationId) =>
    ([NotificationAudience.PARTICIPANTS_AND_MSPS, null] as const).flatMap((audience) =>
      ([CertificateKind.SIGNING, CertificateKind.ENCRYPTION, null] as const).flatMap((certificateKind) =>
        ([Environment.MTF, Environment.PRODUCTION, null] as const).map((environment) => ({ organizationId, secondOrganizationId, audience, certificateKind, environment })),
      ),
    ),
  ),
);

const GRANTS: DelegationGrant[] = [
  { delegationId: "d1", participantId: "P1", mspId: "MSP", environment: Environment.MTF, kinds: [CertificateKind.SIGNING] },
  { delegationId: "d2", participantId: "P2", mspId: "MSP", environment: Environment.PRODUCTION, kinds: [CertificateKind.SIGNING, CertificateKind.ENCRYPTION] },
  { delegationId: "d3", participantId: "P2", mspId: "MSP", environment: Environment.MTF, kinds: [] },
];

function viewer(organizationId: string, kind: OrganizationKind, role = Role.SECURITY_OFFICER): Viewer {
  return {
    officer: { id: `officer-of-${organizationId}`, status: OfficerStatus.ACTIVE },
    organization: { id: organizationId, kind },
    role,
    tokenId: `token-of-${organizationId}`,
  } as unknown as Viewer;
}

const VIEWERS: Array<[string, Viewer]> = [
  ["operator", viewer("KMS", OrganizationKind.KMS, Role.KMS_OPERATOR)],
  ["participant P1", viewer("P1", OrganizationKind.PARTICIPANT)],
  ["participant P2", viewer("P2", OrganizationKind.PARTICIPANT)],
  ["MSP with grants", viewer("MSP", OrganizationKind.MSP)],
];

describe("notification visibility: one definition, the same rows in memory and in SQL", () => {
  let server: TestServer;
  let store: NotificationStore;
  const policy = new AccessPolicy({
    activeForMsp: async (mspId) => GRANTS.filter((g) => g.mspId === mspId),
    activeForParticipant: async (participantId) => GRANTS.filter((g) => g.participantId === participantId),
  });
  let stored: Notification[] = [];
  beforeAll(async () => {
    server = await startTestServer();
    store = new NotificationStore(server.app.db);
    const before = await store.maxId();
    await server.app.db.transaction(async ({ em }) => {
      for (const [i, r] of ROWS.entries()) {
        await em.insert(Notification, {
          ...r,
          position: before + 1000 + i,
          type: "CSR_SUBMITTED",
          occurredAt: new Date("2026-11-28T08:00:00.000Z"),
          message: `case ${i}`,
        } as never);
      }
    });
    stored = (await store.after(before, 10_000)).filter((n) => n.position > before + 999);
    expect(stored).toHaveLength(ROWS.length);
  });
  afterAll(async () => {
    await server?.close();
  });

  for (const [name, v] of VIEWERS) {
    it(`agrees for ${name}`, async () => {
      const afterId = stored[0]!.position - 1;
      const fromSql = (await store.visibleAfter(await policy.notificationScope(v), afterId, null, 10_000)).map((n) => n.position);
      const inMemory: number[] = [];
      for (const n of stored) if (await policy.canSeeNotification(v, n)) inMemory.push(n.position);
      expect(fromSql).toEqual(inMemory);
      expect(inMemory.length).toBeGreaterThan(0);
    });
  }

  it("reads the rules as they are stated for an MSP", async () => {
    const msp = VIEWERS[3]![1];
    const seen = new Set<string>();
    for (const n of stored) {
      if (!(await policy.canSeeNotification(msp, n))) continue;
      if (n.organizationId === "MSP") seen.add("own");
      else if (n.secondOrganizationId === "MSP") seen.add("second");
      else if (n.audience) seen.add("audience");
      else seen.add(`${n.organizationId}/${n.environment}/${n.certificateKind}`);
    }
    // Grant d3 has no kinds: it shows nothing.
    expect([...seen].sort()).toEqual(["P1/MTF/SIGNING", "P2/PRODUCTION/ENCRYPTION", "P2/PRODUCTION/SIGNING", "audience", "own", "second"]);
  });
});
