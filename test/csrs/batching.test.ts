/** A dashboard page of 50 certificates with their nested fields costs a handful of SQL statements, not 50+. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey, makeCsr, makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");

describe.skipIf(!hasOpenssl)("nested fields on a page of certificates", () => {
  let server: TestServer;
  let org: TestOrganization;
  const tmp = makeTempDir("kp-batching-");
  const statements: string[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { country: "PT" });
    for (let i = 0; i < 50; i++) {
      const pem = makeCsr(generateKey(tmp.path, "p256"), `/C=PT/O=${org.name}/CN=Dashboard ${i}`);
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } },
        org.officers[i % 2]!.token,
      );
      await server.ok(`mutation($id: ID!) { signCsr(input: { csrId: $id, validityDays: ${30 + i} }) { id } }`, { id: submitCsr.id });
    }
    // Count every statement the server reads with from here on (SQLite: the reading connection has one query runner).
    const runner = server.app.db.readDataSource.driver.createQueryRunner("master");
    const query = runner.query.bind(runner);
    runner.query = ((sql: string, ...rest: unknown[]) => {
      statements.push(sql);
      return (query as (...a: unknown[]) => Promise<unknown>)(sql, ...rest);
    }) as typeof runner.query;
  }, 180_000);
  afterAll(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it("should answer 50 certificates with organization, CSR, submitter and renewal links in a handful of statements", async () => {
    statements.length = 0;
    const data = await server.ok<{ certificates: { totalCount: number; nodes: Array<{ organization: { name: string }; csr: { submittedBy: { email: string } } }> } }>(
      `{ certificates(first: 50, filter: { environment: MTF }) {
          totalCount
          nodes { serialNumber status notAfter organization { name keyExchangeReady } csr { status submittedBy { email organization { name } } } renewalOf { id } renewedBy { id } }
        } }`,
      {},
      org.officers[0]!.token,
    );
    expect(data.certificates.nodes).toHaveLength(50);
    expect(data.certificates.totalCount).toBe(50);
    expect(new Set(data.certificates.nodes.map((n) => n.csr.submittedBy.email)).size).toBe(2);
    const selects = statements.filter((s) => /^\s*SELECT/i.test(s));
    // authentication (token, officer, organization), the page, the count, organizations, CSRs, officers, officers-by-organization
    expect(selects.length).toBeGreaterThanOrEqual(5); // the counter sees the statements at all
    expect(selects.length).toBeLessThanOrEqual(12);
  });
});
