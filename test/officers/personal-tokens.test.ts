/**
 * Tokens are personal: nobody, operators included, creates a token for
 * somebody else; a token may expire, and then it is refused like a revoked
 * one, open WebSockets included. On SQLite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { auditRows, expectError, sleep } from "./helpers.js";

const CREATE = `mutation($id: ID!, $label: String!, $days: Int) { createApiToken(officerId: $id, label: $label, expiresInDays: $days) { id token createdAt expiresAt officer { id } } }`;
const ME = `{ me { officer { id } } }`;

interface Grant {
  id: string;
  token: string;
  createdAt: string;
  expiresAt: string | null;
  officer: { id: string };
}

const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("personal tokens on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let org: TestOrganization;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { officerCount: 2 });
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should refuse an operator a token for a participant's officer with FORBIDDEN, and create nothing", async () => {
      const [officer] = org.officers;
      const result = await server.gql(CREATE, { id: officer!.id, label: "as operator" }, server.operatorToken);
      expectError(result, "FORBIDDEN");
      const rows = (await server.app.db.dataSource.query(`SELECT id FROM api_tokens WHERE label = 'as operator'`)) as unknown[];
      expect(rows).toHaveLength(0);
      expect((await auditRows(server)).at(-1)).toMatchObject({ action: "token.create", outcome: "FORBIDDEN" });
    });

    it("should refuse an officer a token for a colleague with FORBIDDEN, and grant one for themself", async () => {
      const [a, b] = org.officers;
      expectError(await server.gql(CREATE, { id: b!.id, label: "for colleague" }, a!.token), "FORBIDDEN");
      const { createApiToken } = await server.ok<{ createApiToken: Grant }>(CREATE, { id: a!.id, label: "mine" }, a!.token);
      expect(createApiToken).toMatchObject({ officer: { id: a!.id }, expiresAt: null });
      const { me } = await server.ok<{ me: { officer: { id: string } } }>(ME, {}, createApiToken.token);
      expect(me.officer.id).toBe(a!.id);
    });

    it("should let an operator create a token for themself only", async () => {
      const { me } = await server.ok<{ me: { officer: { id: string } } }>(ME);
      const { createApiToken } = await server.ok<{ createApiToken: Grant }>(CREATE, { id: me.officer.id, label: "operator laptop" });
      expect(createApiToken.officer.id).toBe(me.officer.id);
    });

    it("should refuse expiresInDays outside 1 to 3650 with BAD_USER_INPUT / INVALID_EXPIRY", async () => {
      const a = org.officers[0]!;
      for (const days of [0, -1, 3651]) expectError(await server.gql(CREATE, { id: a.id, label: "bad", days }, a.token), "BAD_USER_INPUT", "INVALID_EXPIRY");
    });

    it("should stop an expiring token at expiresAt with UNAUTHENTICATED, like a revoked one", async () => {
      const a = org.officers[0]!;
      const { createApiToken } = await server.ok<{ createApiToken: Grant }>(CREATE, { id: a.id, label: "short", days: 2 }, a.token);
      expect(createApiToken.expiresAt).toBe(new Date(new Date(createApiToken.createdAt).getTime() + 2 * 86_400_000).toISOString());
      const stored = (await server.app.db.dataSource.query(`SELECT "expiresAt" FROM api_tokens WHERE id = '${createApiToken.id}'`)) as Array<{ expiresAt: string }>;
      expect(stored[0]!.expiresAt).toBe(createApiToken.expiresAt);
      expect((await server.gql(ME, {}, createApiToken.token)).errors).toBeUndefined();
      server.clock.advanceMs(2 * 86_400_000 - 1000);
      expect((await server.gql(ME, {}, createApiToken.token)).errors).toBeUndefined();
      server.clock.advanceMs(1000);
      expectError(await server.gql(ME, {}, createApiToken.token), "UNAUTHENTICATED");
      const download = await fetch(`${server.url}/certificates/00000000-0000-0000-0000-000000000000.pem`, { headers: { authorization: `Bearer ${createApiToken.token}` } });
      expect(download.status).toBe(401);
      // The officer's token without expiry still works.
      expect((await server.gql(ME, {}, a.token)).errors).toBeUndefined();
    });

    it("should close an open WebSocket when its token expires, and refuse to reconnect with it", async () => {
      const a = org.officers[1]!;
      const { createApiToken } = await server.ok<{ createApiToken: Grant }>(CREATE, { id: a.id, label: "socket", days: 1 }, a.token);
      let closedWith: number | null = null;
      let keptClosed = false;
      const connected = new Promise<void>((resolve) => {
        const client = server.wsClient(createApiToken.token, { onClose: (code) => (closedWith = code) });
        client.on("connected", () => resolve());
      });
      await connected;
      const keptOpen = new Promise<void>((resolve) => {
        const client = server.wsClient(a.token, { onClose: () => (keptClosed = true) });
        client.on("connected", () => resolve());
      });
      await keptOpen;
      await sleep(1200);
      expect(closedWith).toBeNull();
      server.clock.advanceMs(86_400_000);
      const deadline = Date.now() + 3000;
      while (closedWith === null && Date.now() < deadline) await sleep(50);
      expect(closedWith).toBe(4403);
      expect(keptClosed).toBe(false);
      let reconnectClosed: number | null = null;
      server.wsClient(createApiToken.token, { onClose: (code) => (reconnectClosed = code) });
      const again = Date.now() + 3000;
      while (reconnectClosed === null && Date.now() < again) await sleep(50);
      expect(reconnectClosed).toBe(4403);
    });
  });
});
