/**
 * The statement budget of signCsr (docs/write-path.md): what runs inside its
 * unit of work, on SQLite and on PostgreSQL, reads that guard the decision
 * included. Parsing, policy reads, profile checks, recipients and the CA
 * signature happen before it and are not counted here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { csrPem } from "../support/csr.js";
import { available } from "../support/deps.js";
import { recordStatements, shorten, units } from "../support/statements.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";

/**
 * At most this many statements inside signCsr's unit of work (before: 23 on
 * SQLite, 22 on PostgreSQL). SQLite: the audit append is 2 (read the head,
 * insert the event; a trigger moves the head). PostgreSQL: 1 (the event waits
 * in audit_pending for the sequencer) plus the key's lock.
 */
const BUDGET: Record<DbKind, number> = { sqlite: 8, postgres: 8 };

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  const deps = db === "postgres" ? await available("postgres") : true;
  describe.skipIf(!deps)(`signCsr's statements inside its transaction (${db})`, () => {
    let server: TestServer;
    let org: TestOrganization;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "PT" });
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    it(`should stay within ${BUDGET[db]} statements, printing the breakdown`, async () => {
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem: await csrPem(org, "Budget 1") } },
        org.officers[0]!.token,
      );
      const statements = recordStatements(server, { writerOnly: true });
      const { signCsr } = await server.ok<{ signCsr: { id: string } }>(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { id } }`, { id: submitCsr.id });
      expect(signCsr.id).toBeTruthy();
      const sign = units(statements).filter((unit) => unit.some((sql) => /INSERT INTO "certificates"/.test(sql)));
      expect(sign).toHaveLength(1);
      const unit = sign[0]!;
      console.log(`signCsr on ${db}: ${unit.length} statements inside its transaction\n  ${unit.map(shorten).join("\n  ")}`);
      expect(unit.some((sql) => /INSERT INTO "email_deliveries"/.test(sql))).toBe(true);
      expect(unit.length).toBeLessThanOrEqual(BUDGET[db]);
    }, 60_000);
  });
}
