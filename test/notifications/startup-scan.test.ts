import { afterAll, describe, expect, it } from "vitest";
import { generateKey, makeCsr, makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");

describe.skipIf(!hasOpenssl)("the expiry scan at start-up", () => {
  let server: TestServer | undefined;
  const tmp = makeTempDir("kp-startup-scan-");
  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it("should send a due reminder when an instance starts, without waiting a whole interval", async () => {
    server = await startTestServer();
    const org = await createOrganization(server, { country: "LU" });
    const pem = makeCsr(generateKey(tmp.path, "p256"), `/C=LU/O=${org.name}/CN=Short Lived`);
    const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
      `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
      { input: { organizationId: org.id, kind: "SIGNING", environment: "MTF", pem } },
      org.officers[0]!.token,
    );
    await server.ok(`mutation($id: ID!) { signCsr(input: { csrId: $id, validityDays: 100 }) { id } }`, { id: submitCsr.id });
    const reminders = `{ notifications(types: [CERTIFICATE_EXPIRING]) { nodes { daysUntilExpiry } } }`;
    expect((await server.ok<{ notifications: { nodes: unknown[] } }>(reminders, {}, org.officers[0]!.token)).notifications.nodes).toEqual([]);

    const { dataDir, operatorToken, clock } = server;
    await server.close({ keepData: true });
    server = await startTestServer({ dataDir, operatorToken, clock });
    let nodes: Array<{ daysUntilExpiry: number }> = [];
    for (let i = 0; i < 100 && nodes.length === 0; i++) {
      nodes = (await server.ok<{ notifications: { nodes: typeof nodes } }>(reminders, {}, org.officers[0]!.token)).notifications.nodes;
      if (nodes.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(nodes).toEqual([{ daysUntilExpiry: 120 }]);
  });
});
