/**
 * What a dashboard's reads cost the database, statement by statement: a
 * page of 50 certificates with nested fields runs a fixed handful of
 * statements (the page, its count, one batch per nested type), and every
 * read, notifications included, goes to the reading connection outside any
 * transaction, so that no read waits in the write queue behind a batch of
 * commits (SQLite) nor holds a transaction (PostgreSQL).
 */
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { recordStatements, type Statement } from "../support/statements.js";
import { issueMtf } from "./helpers.js";

const postgres = await available("postgres");

const NESTED = `totalCount pageInfo { endCursor hasNextPage }
  nodes { serialNumber status notAfter daysUntilExpiry organization { name keyExchangeReady } csr { status submittedBy { email } } renewedBy { id } }`;

const TRANSACTION = /^\s*(BEGIN|SAVEPOINT|RELEASE|COMMIT|ROLLBACK|START TRANSACTION)\b/i;

describe.each<DbKind>(["sqlite", "postgres"])("statements of dashboard reads on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;

    /** The statements `query` ran, once the mail the setup caused has gone out (its delivery worker writes). */
    async function statementsOf(query: string, token: string): Promise<Statement[]> {
      const recorded = recordStatements(server);
      await server.ok(query, {}, token);
      return recorded.slice();
    }

    const onWriter = (s: Statement) => db === "sqlite" && s.runner?.connection === server.app.db.dataSource;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "GB" });
      for (let i = 0; i < 6; i++) await issueMtf(server, org, `Statements ${i}`, { kind: i % 2 ? "SIGNING" : "MTLS_CLIENT" });
      // The emails these caused are sent by a worker that writes as it goes: wait until it has recorded them all.
      const deadline = Date.now() + 30_000;
      const pending = async () =>
        Number(((await server.app.db.manager.query(`SELECT COUNT(*) AS n FROM email_deliveries WHERE status = 'PENDING'`)) as Array<{ n: number | string }>)[0]!.n);
      while ((await pending()) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await pending()).toBe(0);
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    for (const viewer of ["operator", "officer"] as const) {
      it(`should answer a page of certificates with nested fields for the ${viewer} in six reads and no transaction`, async () => {
        const token = viewer === "operator" ? server.operatorToken : org.officers[0]!.token;
        const statements = await statementsOf(`{ certificates(first: 50) { ${NESTED} } }`, token);
        // Authentication aside: without a bus every instance hears (PostgreSQL without Redis) the token is looked up each time.
        const tables = statements.map((s) => s.sql.match(/\bFROM "(\w+)"/)?.[1] ?? s.sql.slice(0, 40)).filter((t) => t !== "api_tokens");
        // The page, its count, then one batch each: organizations, CSRs, their submitters, the organizations' active officers.
        expect(tables.sort()).toEqual(["certificate_signing_requests", "certificate_tallies", "certificates", "officers", "officers", "organizations"]);
        expect(statements.filter((s) => TRANSACTION.test(s.sql) || onWriter(s)).map((s) => s.sql)).toEqual([]);
      });

      it(`should read the ${viewer}'s notifications on the reading connection, outside any transaction`, async () => {
        const token = viewer === "operator" ? server.operatorToken : org.officers[0]!.token;
        const statements = await statementsOf(`{ notifications(first: 100) { nodes { id type } } }`, token);
        const reads = statements.filter((s) => /FROM "notifications"/.test(s.sql));
        expect(reads.length).toBeGreaterThan(0);
        expect(statements.filter((s) => TRANSACTION.test(s.sql) || onWriter(s)).map((s) => s.sql)).toEqual([]);
      });
    }
  });
});

describe("the SQLite driver", () => {
  it("should run statements without sqlite3's verbose mode, which captures a stack trace and inspects every argument of every call", async () => {
    const server = await startTestServer({ db: "sqlite" });
    try {
      await server.ok(`{ me { role } }`, {}, server.operatorToken);
      const sqlite3 = createRequire(import.meta.url)("sqlite3") as { Database: { prototype: Record<string, unknown> } };
      // Verbose mode replaces each of these with a wrapper that starts `const error = new Error()`.
      for (const method of ["all", "run", "get", "prepare", "exec", "close"]) {
        expect(String(sqlite3.Database.prototype[method]), method).not.toMatch(/new Error\(\)/);
      }
    } finally {
      await server.close();
    }
  });
});
