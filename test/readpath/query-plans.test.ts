/**
 * Every list the schema offers, with every filter it accepts, answers from
 * an index in its keyset order: the plan of each statement the server runs
 * for it (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL) has no full
 * scan of certificates, CSRs, notifications, audit events or the tallies,
 * and no sort. On PostgreSQL sequential scans and sorts are priced out
 * (enable_seqscan, enable_sort off), so one shows only when no index can
 * serve the statement: tiny test tables say nothing about the planner's
 * choice at a million rows, but they do say whether an index exists that
 * serves it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { activeDelegation } from "../delegations/helpers.js";
import { issueMtf } from "./helpers.js";
import { recordStatements, type Statement } from "../support/statements.js";

const postgres = await available("postgres");
const WATCHED = /\b(certificates|certificate_signing_requests|notifications|audit_events|certificate_tallies|csr_tallies)\b/;

type Viewer = "operator" | "participant" | "msp";

interface Case {
  name: string;
  query: string;
  viewers: Viewer[];
}

const CERTIFICATE_FILTERS: Array<[string, string]> = [
  ["no filter", ""],
  ["organizationId", `organizationId: $org`],
  ["kind", `kind: SIGNING`],
  ["environment", `environment: MTF`],
  ["status ACTIVE", `status: ACTIVE`],
  ["status EXPIRED", `status: EXPIRED`],
  ["status REVOKED", `status: REVOKED`],
  ["expiringWithinDays", `expiringWithinDays: 30`],
  ["environment and status", `environment: MTF, status: ACTIVE`],
  ["organizationId and status", `organizationId: $org, status: EXPIRED`],
  ["organizationId and expiringWithinDays", `organizationId: $org, expiringWithinDays: 400`],
];
const CSR_FILTERS: Array<[string, string]> = [
  ["no filter", ""],
  ["organizationId", `organizationId: $org`],
  ["status", `status: PENDING`],
  ["kind", `kind: SIGNING`],
  ["environment", `environment: MTF`],
  ["organizationId and status", `organizationId: $org, status: SIGNED`],
];
const ALL: Viewer[] = ["operator", "participant", "msp"];
const PAGE = `totalCount pageInfo { endCursor hasNextPage } nodes { id }`;

/** The operation's variables: $org only where the filter names it, $after on cursor pages. */
function operation(filter: string, after: boolean, body: (args: string) => string): string {
  const vars = [filter.includes("$org") ? "$org: ID" : "", after ? "$after: String" : ""].filter(Boolean);
  const args = `first: 2${after ? ", after: $after" : ""}, filter: { ${filter} }`;
  return `query${vars.length ? `(${vars.join(", ")})` : ""} { ${body(args)} }`;
}

const CASES: Case[] = [
  ...(
    [
      ["certificates", CERTIFICATE_FILTERS],
      ["certificateSigningRequests", CSR_FILTERS],
    ] as const
  ).flatMap(([list, filters]) =>
    filters.flatMap(([name, f]) => [
      { name: `${list}, ${name}`, query: operation(f, false, (args) => `${list}(${args}) { ${PAGE} }`), viewers: ALL },
      { name: `${list} after a cursor, ${name}`, query: operation(f, true, (args) => `${list}(${args}) { ${PAGE} }`), viewers: ALL },
      {
        name: `Organization.${list}, ${name}`,
        query: `query($org: ID!) { organization(id: $org) { ${list}(first: 2, filter: { ${f.replace("organizationId: $org", "kind: MTLS_CLIENT")} }) { ${PAGE} } } }`,
        viewers: ALL,
      },
    ]),
  ),
  { name: "notifications", query: `{ notifications(first: 2) { pageInfo { endCursor } nodes { id } } }`, viewers: ALL },
  { name: "notifications after a cursor", query: `{ notifications(first: 2, after: "1") { nodes { id } } }`, viewers: ALL },
  { name: "notifications of some types", query: `{ notifications(first: 2, types: [CSR_SIGNED, CERTIFICATE_REVOKED]) { nodes { id } } }`, viewers: ALL },
  { name: "auditLog", query: `{ auditLog(first: 2) { nodes { seq } } }`, viewers: ["operator", "participant"] },
  { name: "auditLog after a cursor", query: `{ auditLog(first: 2, after: "3") { nodes { seq } } }`, viewers: ["operator", "participant"] },
];

/** What in a plan reads a whole table or sorts what it read; empty when the plan follows an index. */
async function planFaults(server: TestServer, db: DbKind, statement: Statement): Promise<string[]> {
  if (db === "sqlite") {
    const rows = (await server.app.db.readDataSource.query(`EXPLAIN QUERY PLAN ${statement.sql}`, statement.parameters)) as Array<{ detail: string }>;
    return rows.map((r) => r.detail).filter((d) => (/^SCAN \S+$/.test(d) || /^SCAN \S+ /.test(d)) && !/USING (COVERING )?INDEX|USING INTEGER PRIMARY KEY/.test(d) || /TEMP B-TREE/.test(d));
  }
  const runner = server.app.db.dataSource.createQueryRunner();
  await runner.connect();
  try {
    await runner.startTransaction();
    await runner.query("SET LOCAL enable_seqscan = off");
    await runner.query("SET LOCAL enable_sort = off");
    const rows = (await runner.query(`EXPLAIN ${statement.sql}`, statement.parameters)) as Array<{ "QUERY PLAN": string }>;
    await runner.rollbackTransaction();
    return rows.map((r) => r["QUERY PLAN"]).filter((line) => /Seq Scan on|(^|\s|>)(Incremental )?Sort\b/.test(line));
  } finally {
    await runner.release();
  }
}

describe.each<DbKind>(["sqlite", "postgres"])("query plans of every list and filter on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let participant: TestOrganization;
    let msp: TestOrganization;
    let statements: Statement[];
    const tokens = {} as Record<Viewer, string>;
    const cursors = new Map<string, string | null>();

    beforeAll(async () => {
      server = await startTestServer({ db });
      participant = await createOrganization(server, { country: "GB" });
      msp = await createOrganization(server, { kind: "MSP", country: "GB" });
      await activeDelegation(server, participant, msp, { kinds: ["MTLS_CLIENT", "SIGNING"], environment: "MTF" });
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push(await issueMtf(server, participant, `Plan ${i}`, { kind: i % 2 ? "SIGNING" : "MTLS_CLIENT", validityDays: 20 + i * 200 }));
      await server.ok(`mutation($id: ID!) { revokeCertificate(certificateId: $id, reason: SUPERSEDED) { id } }`, { id: ids[3] });
      tokens.operator = server.operatorToken;
      tokens.participant = participant.officers[0]!.token;
      tokens.msp = msp.officers[0]!.token;
      // One certificate expired: the status and expiry filters read the swept lifecycle.
      server.clock.advanceDays(21);
      statements = recordStatements(server);
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    for (const c of CASES) {
      for (const viewer of c.viewers) {
        it(`should read ${c.name} for the ${viewer} through indexes in keyset order`, async () => {
          const key = `${c.name.replace(" after a cursor", "")}|${viewer}`;
          const variables: Record<string, unknown> = { org: participant.id };
          if (c.name.includes("after a cursor")) variables.after = cursors.get(key) ?? null;
          statements.length = 0;
          const data = await server.ok<Record<string, unknown>>(c.query, variables, tokens[viewer]);
          const connection = JSON.stringify(data).match(/"endCursor":("[^"]*"|null)/);
          if (connection) cursors.set(key, JSON.parse(connection[1]!));
          const read = statements.filter((s) => /^\s*SELECT/i.test(s.sql) && WATCHED.test(s.sql));
          expect(read.length).toBeGreaterThan(0);
          const faults: string[] = [];
          for (const statement of read) {
            const found = await planFaults(server, db, statement);
            if (found.length > 0) faults.push(`${statement.sql}\n  -> ${found.join("; ")}`);
          }
          expect(faults).toEqual([]);
        });
      }
    }
  });
});
