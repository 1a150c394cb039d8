/**
 * Finding 4: a careless or hostile client's mistakes are BAD_USER_INPUT with a
 * reason and HTTP 400, logged at info without a stack; nesting that would
 * overflow a recursive walk is refused before any such walk.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";
import { capturingLogger, post, postRaw, type RawResponse, rawSocket } from "./helpers.js";

describe("client mistakes over HTTP and graphql-ws", () => {
  let server: TestServer;
  const log = capturingLogger();

  beforeAll(async () => {
    server = await startTestServer({ overrides: { logger: log.logger } });
  });
  afterAll(async () => {
    await server?.close();
  });

  const expectRefused = (res: RawResponse, reason: string) => {
    expect(res.json.errors?.[0]?.extensions, res.text.slice(0, 300)).toEqual({ code: "BAD_USER_INPUT", reason });
    expect(res.status).toBe(400);
    expect(res.json.data ?? undefined).toBeUndefined();
    expect(res.text).not.toMatch(/INTERNAL|stack|\.ts:\d+|\.js:\d+/);
  };

  const byId = "query($id: ID!) { certificate(id: $id) { id } }";
  const submit = "mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }";
  const csrInput = (pem: unknown) => ({ environment: "MTF", kind: "MTLS_CLIENT", organizationId: "1", pem });

  it.each([
    ["null for an ID! variable", byId, { id: null }],
    ["a missing variable", byId, {}],
    ["an object for an ID! variable", byId, { id: { a: 1 } }],
    ["a bad enum value", "query($e: Environment!) { caChain(environment: $e) }", { e: "NOPE" }],
    ["an Int overflow", "query($n: Int) { auditLog(first: $n) { nodes { seq } } }", { n: 2 ** 40 }],
    ["a CSR pem that is null", submit, { input: csrInput(null) }],
    ["a CSR pem that is a number", submit, { input: csrInput(42) }],
    ["a CSR pem that is an object", submit, { input: csrInput({ pem: "x" }) }],
    ["a CSR pem that is an array", submit, { input: csrInput(["x"]) }],
    ["a CSR pem that is a boolean", submit, { input: csrInput(true) }],
  ])("should answer %s with 400 and INVALID_VARIABLES", async (_what, query, variables) => {
    expectRefused(await post(server, query, variables, server.operatorToken), "INVALID_VARIABLES");
  });

  it("should refuse a 100k-deep JSON variable with 400 and INVALID_VARIABLES", async () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const body = `{"query":"query($x: [ID]) { __typename }","variables":{"x":${deep}}}`;
    expectRefused(await postRaw(server, body, server.operatorToken), "INVALID_VARIABLES");
  });

  it("should refuse more than 10,000 selections with 400 and QUERY_TOO_COMPLEX", async () => {
    expectRefused(await post(server, `{ ${"__typename ".repeat(12_000)} }`, undefined, server.operatorToken), "QUERY_TOO_COMPLEX");
  });

  it("should refuse a document of more than 20,000 tokens with 400 and QUERY_TOO_COMPLEX, before parsing it all", async () => {
    expectRefused(await post(server, `{ ${"__typename ".repeat(30_000)} }`, undefined, server.operatorToken), "QUERY_TOO_COMPLEX");
  });

  it.each([
    ["2,000 levels of selections", `{ ${"me { organization { ".repeat(1000)}id${" } }".repeat(1000)} }`],
    ["100k opening braces", "{".repeat(100_000)],
    ["a 200k-deep list literal", `{ certificate(id: ${"[".repeat(200_000)}${"]".repeat(200_000)}) { id } }`],
  ])("should refuse %s with 400 and QUERY_TOO_COMPLEX instead of overflowing the stack", async (_what, query) => {
    const res = await post(server, query, undefined, server.operatorToken);
    expectRefused(res, "QUERY_TOO_COMPLEX");
    expect(res.json.errors?.[0]?.message).toMatch(/nesting \d+ exceeds the limit of 64/);
  });

  it("should answer a subscription sent as HTTP POST with 400 and SUBSCRIPTION_OVER_HTTP", async () => {
    const res = await post(server, "subscription { notifications { id } }", undefined, server.operatorToken);
    expectRefused(res, "SUBSCRIPTION_OVER_HTTP");
    expect(res.json.errors?.[0]?.message).toMatch(/WebSocket/);
  });

  it("should refuse the same nesting and variables over graphql-ws as an error for that operation, keeping the socket", async () => {
    const socket = await rawSocket(server, server.operatorToken);
    await socket.next("connection_ack");
    socket.send({ id: "deep", type: "subscribe", payload: { query: "{".repeat(100_000) } });
    socket.send({ id: "vars", type: "subscribe", payload: { query: byId, variables: { id: null } } });
    const deep = (await socket.next("error", "deep")).payload as Array<{ extensions?: unknown }>;
    const vars = (await socket.next("error", "vars")).payload as Array<{ extensions?: unknown }>;
    expect(deep[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
    expect(vars[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_VARIABLES" });
    socket.send({ id: "ok", type: "subscribe", payload: { query: "{ me { role } }" } });
    expect((await socket.next("next", "ok")).payload).toEqual({ data: { me: { role: "KMS_OPERATOR" } } });
    socket.ws.close();
  });

  it("should have logged every one of these at info, by code and reason, and none as a server error", () => {
    const lines = log.lines();
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    const refused = lines.filter((l) => l.msg === "request refused");
    expect(refused.length).toBeGreaterThanOrEqual(19);
    expect(refused.every((l) => l.level === 30 && l.code === "BAD_USER_INPUT" && typeof l.reason === "string")).toBe(true);
    expect(JSON.stringify(lines)).not.toMatch(/"stack"|at .*\.(ts|js):\d+/);
  });
});
