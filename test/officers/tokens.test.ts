import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Client } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addOfficer, type TestOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { auditRows, CREATE_API_TOKEN, DEACTIVATE_OFFICER, eventually, expectError, freshEmail, REVOKE_API_TOKEN, sleep } from "./helpers.js";

interface TokenRow {
  id: string;
  officerId: string;
  tokenHash: string;
  label: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const tokenRow = async (server: TestServer, id: string): Promise<TokenRow> =>
  ((await server.app.db.dataSource.query(`SELECT * FROM api_tokens WHERE id = ?`, [id])) as TokenRow[])[0]!;

describe("API tokens", () => {
  let server: TestServer;
  let org: TestOrganization;
  let officer: TestOfficer;

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { officerCount: 2 });
    officer = org.officers[0]!;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should show a new token once and store only its SHA-256, nowhere else in the database", async () => {
    const label = "ci pipeline";
    const { createApiToken } = await server.ok<{ createApiToken: { id: string; token: string; label: string; officer: { id: string } } }>(
      CREATE_API_TOKEN,
      { id: officer.id, label },
      officer.token,
    );
    const { token } = createApiToken;
    expect(token).toMatch(/^kp_[A-Za-z0-9_-]{43}$/);

    const row = await tokenRow(server, createApiToken.id);
    expect(row).toMatchObject({ officerId: officer.id, label, revokedAt: null });
    expect(row.tokenHash).toBe(createHash("sha256").update(token).digest("hex"));

    // Not in any column of any row...
    const tables = ["api_tokens", "officers", "organizations", "audit_events", "notifications", "app_state"];
    for (const table of tables) {
      const rows = (await server.app.db.dataSource.query(`SELECT * FROM ${table}`)) as unknown[];
      expect(JSON.stringify(rows), table).not.toContain(token);
    }
    // ...nor in the files of the database (main file and write-ahead log).
    for (const file of readdirSync(server.dataDir).filter((f) => f.startsWith("keyportal.sqlite"))) {
      expect(readFileSync(path.join(server.dataDir, file)).includes(Buffer.from(token)), file).toBe(false);
    }
    const event = (await auditRows(server)).at(-1)!;
    expect(event).toMatchObject({ action: "token.create", outcome: "SUCCESS", targetId: createApiToken.id, actorId: officer.id });
    expect(JSON.parse(event.details)).toEqual({ officerId: officer.id, label });

    // The schema has no field that could give a token (or its hash) back.
    const { __schema } = await server.ok<{ __schema: { types: Array<{ name: string; fields: Array<{ name: string }> | null }> } }>(
      `{ __schema { types { name fields { name } } } }`,
    );
    const tokenFields = __schema.types.flatMap((t) => (t.fields ?? []).filter((f) => /token/i.test(f.name)).map((f) => `${t.name}.${f.name}`));
    expect(tokenFields.sort()).toEqual(["ApiTokenGrant.token", "Mutation.createApiToken", "Mutation.revokeApiToken"]);
  });

  it("should set lastUsedAt when a token is used, at most once a minute", async () => {
    const fresh = await addOfficer(server, org.id, freshEmail());
    expect((await tokenRow(server, fresh.tokenId)).lastUsedAt).toBeNull();

    const firstUse = server.clock.now().toISOString();
    await server.ok(`{ me { role } }`, {}, fresh.token);
    await eventually(async () => ((await tokenRow(server, fresh.tokenId)).lastUsedAt === firstUse ? true : undefined));

    server.clock.advanceMs(30_000);
    await server.ok(`{ me { role } }`, {}, fresh.token);
    await sleep(100);
    expect((await tokenRow(server, fresh.tokenId)).lastUsedAt).toBe(firstUse);

    server.clock.advanceMs(60_000);
    const laterUse = server.clock.now().toISOString();
    await server.ok(`{ me { role } }`, {}, fresh.token);
    await eventually(async () => ((await tokenRow(server, fresh.tokenId)).lastUsedAt === laterUse ? true : undefined));
  });

  it("should answer a revoked token with UNAUTHENTICATED over HTTP, and refuse to revoke it twice", async () => {
    const fresh = await addOfficer(server, org.id, freshEmail());
    expect((await server.ok<{ me: { officer: { id: string } } }>(`{ me { officer { id } } }`, {}, fresh.token)).me.officer.id).toBe(fresh.id);
    expect(await server.ok(REVOKE_API_TOKEN, { id: fresh.tokenId }, fresh.token)).toEqual({ revokeApiToken: true });
    expect((await tokenRow(server, fresh.tokenId)).revokedAt).toBe(server.clock.now().toISOString());
    expectError(await server.gql(`{ me { role } }`, {}, fresh.token), "UNAUTHENTICATED");
    expectError(await server.gql(REVOKE_API_TOKEN, { id: fresh.tokenId }, server.operatorToken), "CONFLICT", "ALREADY_REVOKED");
  });

  it("should leave the officer's other tokens working when one is revoked", async () => {
    const fresh = await addOfficer(server, org.id, freshEmail());
    const { createApiToken: second } = await server.ok<{ createApiToken: { id: string; token: string } }>(
      CREATE_API_TOKEN,
      { id: fresh.id, label: "second" },
      fresh.token,
    );
    await server.ok(REVOKE_API_TOKEN, { id: fresh.tokenId }, second.token);
    expect((await server.ok<{ me: { officer: { id: string } } }>(`{ me { officer { id } } }`, {}, second.token)).me.officer.id).toBe(fresh.id);
  });

  it("should accept only a Bearer authorization header", async () => {
    const res = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: officer.token },
      body: JSON.stringify({ query: "{ me { role } }" }),
    });
    expect(((await res.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0]!.extensions.code).toBe("UNAUTHENTICATED");
    const lower = await fetch(`${server.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `bearer ${officer.token}` },
      body: JSON.stringify({ query: "{ me { role } }" }),
    });
    expect(await lower.json()).toEqual({ data: { me: { role: "SECURITY_OFFICER" } } });
  });

  it("should refuse a token label that is empty or too long with BAD_USER_INPUT / INVALID_LABEL", async () => {
    expectError(await server.gql(CREATE_API_TOKEN, { id: officer.id, label: "  " }, officer.token), "BAD_USER_INPUT", "INVALID_LABEL");
    expectError(await server.gql(CREATE_API_TOKEN, { id: officer.id, label: "l".repeat(101) }, officer.token), "BAD_USER_INPUT", "INVALID_LABEL");
  });
});

describe("WebSocket connections", () => {
  let server: TestServer;
  let org: TestOrganization;

  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { officerCount: 2 });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Connects and waits for the server's acknowledgement, or for the close. */
  function connect(token: string | null): { client: Client; closed: Promise<{ code: number; reason: string }>; opened: Promise<boolean> } {
    let resolveClosed!: (v: { code: number; reason: string }) => void;
    const closed = new Promise<{ code: number; reason: string }>((r) => (resolveClosed = r));
    const client = server.wsClient(token, { onClose: (code, reason) => resolveClosed({ code, reason }) });
    const opened = new Promise<boolean>((resolve) => {
      client.on("connected", () => resolve(true));
      void closed.then(() => resolve(false));
    });
    return { client, closed, opened };
  }

  /** A query over the socket: proves the connection is alive and authenticated as whom. */
  function whoAmI(client: Client): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let value: unknown;
      client.subscribe({ query: "{ me { officer { id } } }" }, { next: (v) => (value = v), error: reject, complete: () => resolve(value) });
    });
  }

  it("should close a connection without connectionParams.authorization with 4401", async () => {
    const { closed, opened } = connect(null);
    expect(await opened).toBe(false);
    expect((await closed).code).toBe(4401);
  });

  it("should close a connection with an unknown token with 4403", async () => {
    const { closed, opened } = connect("kp_unknown_token_that_was_never_issued_000000");
    expect(await opened).toBe(false);
    expect((await closed).code).toBe(4403);
  });

  it("should close a revoked token's open socket with 4403 and leave the officer's other token's socket open", async () => {
    const officer = await addOfficer(server, org.id, freshEmail());
    const { createApiToken: other } = await server.ok<{ createApiToken: { id: string; token: string } }>(CREATE_API_TOKEN, {
      id: officer.id,
      label: "second device",
    }, officer.token);
    const revoked = connect(officer.token);
    const kept = connect(other.token);
    expect(await revoked.opened).toBe(true);
    expect(await kept.opened).toBe(true);
    expect(await whoAmI(revoked.client)).toEqual({ data: { me: { officer: { id: officer.id } } } });

    await server.ok(REVOKE_API_TOKEN, { id: officer.tokenId }, other.token);
    const closeEvent = await Promise.race([revoked.closed, sleep(3000).then(() => null)]);
    expect(closeEvent?.code).toBe(4403);

    expect(await whoAmI(kept.client)).toEqual({ data: { me: { officer: { id: officer.id } } } });

    // Reconnecting with the revoked token is refused too.
    const again = connect(officer.token);
    expect(await again.opened).toBe(false);
    expect((await again.closed).code).toBe(4403);
  });

  it("should close every socket of a deactivated officer with 4403", async () => {
    const officer = await addOfficer(server, org.id, freshEmail());
    const { createApiToken: other } = await server.ok<{ createApiToken: { token: string } }>(CREATE_API_TOKEN, { id: officer.id, label: "tablet" }, officer.token);
    const sockets = [connect(officer.token), connect(other.token)];
    const bystander = connect(org.officers[0]!.token);
    for (const s of [...sockets, bystander]) expect(await s.opened).toBe(true);

    await server.ok(DEACTIVATE_OFFICER, { id: officer.id }, org.officers[0]!.token);
    for (const s of sockets) {
      const event = await Promise.race([s.closed, sleep(3000).then(() => null)]);
      expect(event?.code).toBe(4403);
    }
    expect(await whoAmI(bystander.client)).toEqual({ data: { me: { officer: { id: org.officers[0]!.id } } } });
  });
});
