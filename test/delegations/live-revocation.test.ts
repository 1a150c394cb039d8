import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { csrFor, SUBMIT } from "../certificates/helpers.js";
import { activeDelegation, REVOKE_DELEGATION } from "./helpers.js";
import { lastNotificationId, notificationIdWhere, subscribeNotifications } from "./subscriptions.js";

const hasOpenssl = await available("openssl");

describe.skipIf(!hasOpenssl)("a live MSP subscription and delegation revocation", () => {
  let server: TestServer;
  let participant: TestOrganization;
  let msp: TestOrganization;
  let tmp: ReturnType<typeof makeTempDir>;

  beforeAll(async () => {
    tmp = makeTempDir("kp-live-revocation-");
    server = await startTestServer();
    participant = await createOrganization(server, { country: "SE" });
    msp = await createOrganization(server, { kind: "MSP", country: "GB" });
  });
  afterAll(async () => {
    try {
      await server?.close();
    } finally {
      tmp?.cleanup();
    }
  });

  async function participantEvent(): Promise<string> {
    const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
      SUBMIT,
      { input: { organizationId: participant.id, kind: "MTLS_CLIENT", environment: "MTF", pem: csrFor(tmp.path, participant, "Watched").pem } },
      participant.officers[0]!.token,
    );
    return notificationIdWhere(server, "csrId", submitCsr.id, "CSR_SUBMITTED");
  }

  it("should stop delivering the participant's events to the MSP's open subscription the moment the delegation is revoked", async () => {
    const delegation = await activeDelegation(server, participant, msp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
    const after = await lastNotificationId(server);
    const mspFeed = subscribeNotifications(server, msp.officers[0]!.token, after);
    const participantFeed = subscribeNotifications(server, participant.officers[1]!.token, after);
    try {
      const before = await participantEvent();
      await mspFeed.waitFor(before);

      await server.ok(REVOKE_DELEGATION, { id: delegation.id }, participant.officers[1]!.token);
      const revoked = await notificationIdWhere(server, "delegationId", delegation.id, "DELEGATION_REVOKED");
      // The MSP hears that it lost the delegation (it is the second organization of that event)...
      await mspFeed.waitFor(revoked);

      // ...and nothing of the participant's after it, on the same open socket.
      const afterRevocation = await participantEvent();
      await participantFeed.waitFor(afterRevocation);
      const officer = await addOfficer(server, msp.id, `sentinel-${Date.now()}@example.com`);
      const sentinel = await notificationIdWhere(server, "officerId", officer.id, "OFFICER_REGISTERED");
      // Delivery is in order: once the MSP's own later event arrived, the participant's would have arrived before it.
      await mspFeed.waitFor(sentinel);
      expect(mspFeed.has(afterRevocation)).toBe(false);
      expect(mspFeed.errors).toEqual([]);
      expect(mspFeed.received).toEqual([
        { id: before, type: "CSR_SUBMITTED" },
        { id: revoked, type: "DELEGATION_REVOKED" },
        { id: sentinel, type: "OFFICER_REGISTERED" },
      ]);
    } finally {
      mspFeed.dispose();
      participantFeed.dispose();
    }
  });
});
