/**
 * totalCount comes from tallies maintained in the transaction of each change
 * (issuance, revocation, expiry by time, CSR submission and decisions). It
 * must equal the list it counts for every viewer and filter, and the tallies
 * must equal a recount of the rows, after concurrent changes too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activeDelegation } from "../delegations/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { csrPem, issueMtf } from "./helpers.js";

const postgres = await available("postgres");

interface Node {
  id: string;
  status: string;
  kind: string;
  environment: string;
  daysUntilExpiry: number;
  notAfter: string;
  organization: { id: string };
}

const CERTIFICATE_FILTERS: Array<Record<string, unknown>> = [
  {},
  { status: "ACTIVE" },
  { status: "EXPIRED" },
  { status: "REVOKED" },
  { kind: "SIGNING" },
  { environment: "MTF" },
  { environment: "PRODUCTION" },
  { expiringWithinDays: 0 },
  { expiringWithinDays: 30 },
  { expiringWithinDays: 31 },
  { expiringWithinDays: 400 },
  { status: "EXPIRED", expiringWithinDays: 30 },
  { kind: "MTLS_CLIENT", status: "ACTIVE", expiringWithinDays: 400 },
];
const CSR_FILTERS: Array<Record<string, unknown>> = [{}, { status: "PENDING" }, { status: "SIGNED" }, { status: "REJECTED" }, { status: "CANCELLED" }, { kind: "SIGNING" }];

async function allCertificates(server: TestServer, token: string, filter: Record<string, unknown>): Promise<{ totalCount: number; nodes: Node[] }> {
  const nodes: Node[] = [];
  let after: string | null = null;
  let totalCount: number;
  for (;;) {
    const { certificates } = await server.ok<{ certificates: { totalCount: number; nodes: Node[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } }>(
      `query($filter: CertificateFilter, $after: String) { certificates(first: 3, after: $after, filter: $filter) {
        totalCount pageInfo { endCursor hasNextPage } nodes { id status kind environment daysUntilExpiry notAfter organization { id } } } }`,
      { filter, after },
      token,
    );
    totalCount = certificates.totalCount;
    nodes.push(...certificates.nodes);
    if (!certificates.pageInfo.hasNextPage) return { totalCount, nodes };
    after = certificates.pageInfo.endCursor;
  }
}

describe.each<DbKind>(["sqlite", "postgres"])("exact totalCount from maintained tallies on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let a: TestOrganization;
    let b: TestOrganization;
    let msp: TestOrganization;
    let viewers: Array<[string, string]>;

    beforeAll(async () => {
      server = await startTestServer({ db });
      a = await createOrganization(server, { country: "GB" });
      b = await createOrganization(server, { country: "GB" });
      msp = await createOrganization(server, { kind: "MSP", country: "GB" });
      await activeDelegation(server, a, msp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
      const issued: string[] = [];
      for (const [org, kind, days] of [
        [a, "MTLS_CLIENT", 10],
        [a, "MTLS_CLIENT", 30],
        [a, "MTLS_CLIENT", 31],
        [a, "SIGNING", 30],
        [a, "MTLS_CLIENT", 365],
        [b, "MTLS_CLIENT", 10],
        [b, "SIGNING", 200],
      ] as const) {
        issued.push(await issueMtf(server, org, `Tally ${issued.length}`, { kind, validityDays: days }));
      }
      await server.ok(`mutation($id: ID!) { revokeCertificate(certificateId: $id, reason: SUPERSEDED) { id } }`, { id: issued[4] });
      // CSRs left in every status.
      const submit = async (org: TestOrganization, cn: string) =>
        (
          await server.ok<{ submitCsr: { id: string } }>(
            `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
            { input: { organizationId: org.id, kind: "SIGNING", environment: "MTF", pem: await csrPem(org, cn) } },
            org.officers[0]!.token,
          )
        ).submitCsr.id;
      await submit(a, "Pending");
      await server.ok(`mutation($id: ID!) { rejectCsr(csrId: $id, reason: "wrong name") { id } }`, { id: await submit(a, "Rejected") });
      await server.ok(`mutation($id: ID!) { cancelCsr(csrId: $id) { id } }`, { id: await submit(b, "Cancelled") }, b.officers[0]!.token);
      viewers = [
        ["operator", server.operatorToken],
        ["participant", a.officers[0]!.token],
        ["other participant", b.officers[0]!.token],
        ["msp", msp.officers[0]!.token],
      ];
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    async function expectCountsMatchLists(): Promise<void> {
      const now = server.clock.now().getTime();
      for (const [who, token] of viewers) {
        for (const filter of CERTIFICATE_FILTERS) {
          const { totalCount, nodes } = await allCertificates(server, token, filter);
          const label = `${who} ${JSON.stringify(filter)}`;
          expect(totalCount, label).toBe(nodes.length);
          for (const n of nodes) {
            if (filter.status) expect(n.status, label).toBe(filter.status);
            if (filter.kind) expect(n.kind, label).toBe(filter.kind);
            if (filter.environment) expect(n.environment, label).toBe(filter.environment);
            if (typeof filter.expiringWithinDays === "number") {
              expect(n.status, label).toBe("ACTIVE");
              expect(new Date(n.notAfter).getTime() - now, label).toBeLessThanOrEqual(filter.expiringWithinDays * 86_400_000);
            }
          }
        }
        for (const filter of CSR_FILTERS) {
          const { certificateSigningRequests } = await server.ok<{ certificateSigningRequests: { totalCount: number; nodes: Array<{ status: string }> } }>(
            `query($filter: CsrFilter) { certificateSigningRequests(first: 500, filter: $filter) { totalCount nodes { status } } }`,
            { filter },
            token,
          );
          expect(certificateSigningRequests.totalCount, `${who} CSRs ${JSON.stringify(filter)}`).toBe(certificateSigningRequests.nodes.length);
        }
      }
      const { organization } = await server.ok<{ organization: { certificates: { totalCount: number; nodes: unknown[] } } }>(
        `query($id: ID!) { organization(id: $id) { certificates(first: 500, filter: { status: ACTIVE }) { totalCount nodes { id } } } }`,
        { id: a.id },
      );
      expect(organization.certificates.totalCount).toBe(organization.certificates.nodes.length);
    }

    async function expectTalliesMatchRecount(): Promise<void> {
      const q = (sql: string) => server.app.db.dataSource.query(sql) as Promise<Array<Record<string, string | number>>>;
      const rows = (list: Array<Record<string, string | number>>) =>
        list.map((r) => Object.values(r).map(String).join("|")).sort();
      const day = `CASE WHEN "lifecycle" = 'ACTIVE' THEN substr("notAfter", 1, 10) ELSE '' END`;
      for (const org of [`"organizationId"`, `'*'`]) {
        const recount = await q(
          `SELECT ${org} AS o, "environment", "kind", "lifecycle", ${day} AS d, COUNT(*) AS n FROM certificates GROUP BY 1, 2, 3, 4, 5`,
        );
        const kept = await q(
          `SELECT "organizationId" AS o, "environment", "kind", "lifecycle", "expiryDay" AS d, "n" FROM certificate_tallies WHERE "n" <> 0 AND ${org === `'*'` ? `"organizationId" = '*'` : `"organizationId" <> '*'`}`,
        );
        expect(rows(kept)).toEqual(rows(recount));
        const csrRecount = await q(`SELECT ${org} AS o, "environment", "kind", "status", COUNT(*) AS n FROM certificate_signing_requests GROUP BY 1, 2, 3, 4`);
        const csrKept = await q(
          `SELECT "organizationId" AS o, "environment", "kind", "status", "n" FROM csr_tallies WHERE "n" <> 0 AND ${org === `'*'` ? `"organizationId" = '*'` : `"organizationId" <> '*'`}`,
        );
        expect(rows(csrKept)).toEqual(rows(csrRecount));
      }
    }

    it("should count exactly what every viewer's list holds, for every filter, with nothing expired yet", async () => {
      await expectCountsMatchLists();
      await expectTalliesMatchRecount();
    });

    it("should move expired certificates out of ACTIVE at the first read after notAfter, part-days of expiringWithinDays included", async () => {
      server.clock.advanceDays(10);
      server.clock.advanceMs(3 * 3_600_000);
      await expectCountsMatchLists();
      const { certificates } = await server.ok<{ certificates: { totalCount: number } }>(`{ certificates(filter: { status: EXPIRED }) { totalCount } }`);
      expect(certificates.totalCount).toBe(2);
      await expectTalliesMatchRecount();
    });

    it("should keep the tallies equal to a recount after concurrent issuance, revocation and expiry", async () => {
      const ids = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => issueMtf(server, i % 2 ? a : b, `Concurrent ${i}`, { validityDays: 5 + i })));
      server.clock.advanceDays(6);
      await Promise.all([
        ...ids.slice(0, 3).map((id) => server.gql(`mutation($id: ID!) { revokeCertificate(certificateId: $id, reason: SUPERSEDED) { id } }`, { id })),
        server.app.services.expiryScanner.runOnce({ waitMs: 10_000 }),
        server.gql(`{ certificates(filter: { status: EXPIRED }) { totalCount } }`),
      ]);
      await expectCountsMatchLists();
      await expectTalliesMatchRecount();
    });
  });
});
