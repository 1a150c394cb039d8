import { execFile } from "node:child_process";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { getIntrospectionQuery } from "graphql";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";

interface ErrorBody {
  data?: unknown;
  errors?: Array<{ message: string; extensions?: Record<string, unknown>; locations?: unknown; path?: unknown }>;
}

async function post(server: TestServer, body: string, token?: string): Promise<{ status: number; json: ErrorBody; text: string }> {
  const res = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body,
  });
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as ErrorBody, text };
}

/** organizations { officers { organization { officers { ... } } } } with `levels` fields in all. */
function deepQuery(levels: number): string {
  let selection = "id";
  for (let i = levels - 1; i >= 1; i--) {
    const field = i === 1 ? "organizations" : i % 2 === 0 ? "officers" : "organization";
    selection = `${field} { ${selection} }`;
  }
  return `{ ${selection} }`;
}

describe("HTTP endpoints", () => {
  let server: TestServer;
  const logLines: string[] = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
        done();
      },
    });
    server = await startTestServer({ overrides: { logger: pino({ level: "info" }, sink) } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should answer /healthz with 200", async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("should answer { __typename } to curl -X POST /graphql", async () => {
    const { stdout } = await promisify(execFile)("curl", [
      "-sS",
      "-X",
      "POST",
      "-H",
      "content-type: application/json",
      "--data",
      '{"query":"{ __typename }"}',
      "-w",
      "\n%{http_code}",
      `${server.url}/graphql`,
    ]);
    const cut = stdout.lastIndexOf("\n");
    expect(stdout.slice(cut + 1)).toBe("200");
    expect(JSON.parse(stdout.slice(0, cut))).toEqual({ data: { __typename: "Query" } });
  });

  it("should mark every GraphQL answer, with data or with errors, as not to be stored by caches (Cache-Control: no-store)", async () => {
    for (const [body, token] of [
      [JSON.stringify({ query: "{ me { role } }" }), server.operatorToken],
      [JSON.stringify({ query: "{ me { role } }" }), undefined],
      [JSON.stringify({ query: "{ noSuchField }" }), server.operatorToken],
    ] as const) {
      const res = await fetch(`${server.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body,
      });
      await res.text();
      expect(res.headers.get("cache-control"), body).toBe("no-store");
    }
  });

  it("should refuse a body over 1 MB with 413 and a JSON BAD_USER_INPUT / PAYLOAD_TOO_LARGE error", async () => {
    const padding = "x".repeat(1024 * 1024 + 1);
    const res = await post(server, JSON.stringify({ query: "{ __typename }", variables: { padding } }));
    expect(res.status).toBe(413);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "PAYLOAD_TOO_LARGE" });
    expect(res.text).not.toMatch(/<html|at .*\.js:\d+/i);
  });

  it("should still accept a body just under 1 MB", async () => {
    const padding = "x".repeat(1000 * 1000);
    const res = await post(server, JSON.stringify({ query: "{ __typename }", variables: { padding } }));
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ data: { __typename: "Query" } });
  });

  it("should answer malformed JSON with 400 and BAD_USER_INPUT / INVALID_JSON", async () => {
    const res = await post(server, '{"query": "{ __typename }"');
    expect(res.status).toBe(400);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_JSON" });
  });

  it("should answer a query at the depth limit of 12", async () => {
    // Deep but cheap (one item per level): nested lists would be refused by their cost instead.
    let chain = "id";
    for (let i = 0; i < 9; i++) chain = `renewalOf { ${chain} }`;
    const res = await post(server, JSON.stringify({ query: `{ certificates(first: 1) { nodes { ${chain} } } }` }), server.operatorToken);
    expect(res.json.errors).toBeUndefined();
    expect(res.status).toBe(200);
  });

  it("should refuse a query deeper than 12 with 400 and BAD_USER_INPUT / QUERY_TOO_COMPLEX, without running it", async () => {
    const res = await post(server, JSON.stringify({ query: deepQuery(13) }), server.operatorToken);
    expect(res.status).toBe(400);
    expect(res.json.data).toBeUndefined();
    expect(res.json.errors).toHaveLength(1);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
    expect(res.json.errors?.[0]?.message).toMatch(/depth 13 exceeds the limit of 12/);
  });

  it("should count depth through fragments too", async () => {
    const query = `query { ...Deep } fragment Deep on Query { ${deepQuery(13).slice(1, -1)} }`;
    const res = await post(server, JSON.stringify({ query }), server.operatorToken);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
  });

  it("should refuse a list with a huge `first` as QUERY_TOO_COMPLEX before the resolver sees it", async () => {
    const res = await post(server, JSON.stringify({ query: "{ auditLog(first: 1000000) { nodes { seq action } } }" }), server.operatorToken);
    expect(res.status).toBe(400);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
    expect(res.json.errors?.[0]?.message).toMatch(/complexity \d+ exceeds the limit of 20000/);
  });

  it("should take `first` from variables when estimating complexity", async () => {
    const query = "query($n: Int) { auditLog(first: $n) { nodes { seq actor { organization { officers { id } } } } } }";
    const res = await post(server, JSON.stringify({ query, variables: { n: 100000 } }), server.operatorToken);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
  });

  it("should refuse many aliased lists whose total cost is over the limit, though each is allowed", async () => {
    const one = "auditLog(first: 500) { nodes { seq actor { name organization { name } } } }";
    const query = `{ ${Array.from({ length: 8 }, (_, i) => `a${i}: ${one}`).join(" ")} }`;
    const single = await post(server, JSON.stringify({ query: `{ ${one} }` }), server.operatorToken);
    expect(single.json.errors).toBeUndefined();
    const res = await post(server, JSON.stringify({ query }), server.operatorToken);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
  });

  it("should refuse a too-deep operation over graphql-ws with the same code and reason and nothing else", async () => {
    const client = server.wsClient(server.operatorToken);
    const errors = await new Promise<unknown>((resolve, reject) => {
      client.subscribe(
        { query: deepQuery(13) },
        { next: (value) => reject(new Error(`expected an error, got ${JSON.stringify(value)}`)), error: resolve, complete: () => reject(new Error("completed")) },
      );
    });
    expect(errors).toEqual([
      expect.objectContaining({ extensions: { code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" } }),
    ]);
    await client.dispose();
  });

  it("should allow GraphiQL's full introspection query with a token", async () => {
    const query = getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
    });
    const res = await post(server, JSON.stringify({ query, operationName: "IntrospectionQuery" }), server.operatorToken);
    expect(res.status).toBe(200);
    expect(res.json.errors).toBeUndefined();
    const schema = (res.json.data as { __schema: { queryType: { name: string }; types: Array<{ name: string }> } }).__schema;
    expect(schema.queryType.name).toBe("Query");
    expect(schema.types.map((t) => t.name)).toEqual(expect.arrayContaining(["Organization", "Officer", "AuditEvent"]));
  });

  it("should mask an unexpected error as INTERNAL_SERVER_ERROR with no detail, and log it server-side", async () => {
    const organizations = server.app.services.organizations;
    const original = organizations.list;
    const secret = "password=hunter2 SELECT * FROM api_tokens WHERE tokenHash = 'deadbeef'";
    organizations.list = async () => {
      throw new Error(secret);
    };
    try {
      const res = await post(server, JSON.stringify({ query: "{ organizations { id } }" }), server.operatorToken);
      expect(res.status).toBe(200);
      expect(res.json.data).toBeNull();
      expect(res.json.errors).toEqual([
        { message: "Internal server error", path: ["organizations"], extensions: { code: "INTERNAL_SERVER_ERROR", reason: "INTERNAL" } },
      ]);
      expect(res.text).not.toMatch(/hunter2|SELECT|api_tokens|stack|\.ts:\d+|\.js:\d+/);
      const logged = logLines.map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message: string; stack: string } });
      const entry = logged.find((l) => l.msg === "unexpected error" && l.err?.message === secret);
      expect(entry?.level).toBe(50); // pino "error"
      expect(entry?.err?.stack).toContain("Error: password=hunter2");
    } finally {
      organizations.list = original;
    }
  });

  it("should mask a non-Error thrown value the same way", async () => {
    const organizations = server.app.services.organizations;
    const original = organizations.list;
    organizations.list = async () => {
      throw { sql: "DELETE FROM audit_events", detail: "secret-detail" };
    };
    try {
      const res = await post(server, JSON.stringify({ query: "{ organizations { id } }" }), server.operatorToken);
      expect(res.json.errors?.[0]).toMatchObject({ message: "Internal server error", extensions: { code: "INTERNAL_SERVER_ERROR" } });
      expect(res.text).not.toMatch(/secret-detail|DELETE FROM/);
    } finally {
      organizations.list = original;
    }
  });
});
