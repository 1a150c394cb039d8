/**
 * Finding 1: introspection amplification. Cost follows the size of the
 * answer, introspection included; a caller without a token gets a small
 * share of the budget; one full introspection with a token still runs.
 */
import { getIntrospectionQuery } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";
import { post } from "./helpers.js";

const AMPLIFIER = "__schema { types { fields { args { name } type { ofType { name } } } } }";
const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${AMPLIFIER}`).join(" ")} }`;
const fullIntrospection = getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true });

describe("query cost that follows result size", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should refuse 500 aliased introspections with a token at once with a small 400 QUERY_TOO_COMPLEX", async () => {
    const started = performance.now();
    const res = await post(server, aliases(500), undefined, server.operatorToken);
    expect(res.status).toBe(400);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
    expect(res.json.errors?.[0]?.message).toMatch(/complexity \d+ exceeds the limit of 20000/);
    expect(res.text.length).toBeLessThan(1000);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("should count introspection like any field: a few aliased copies are already over the budget", async () => {
    const one = await post(server, aliases(1), undefined, server.operatorToken);
    expect(one.json.errors).toBeUndefined();
    const ten = await post(server, aliases(15), undefined, server.operatorToken);
    expect(ten.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
  });

  it("should run GraphiQL's full introspection for a token, but not twice in one request", async () => {
    const once = await post(server, fullIntrospection, undefined, server.operatorToken);
    expect(once.status).toBe(200);
    expect(once.json.errors).toBeUndefined();
    const twice = fullIntrospection.replace("__schema {", "a: __schema { queryType { name } } b: __schema {").replace(/query IntrospectionQuery \{/, "query IntrospectionQuery { again: __schema { types { ...FullType } }");
    const res = await post(server, twice, undefined, server.operatorToken);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
  });

  it("should give a caller without a token a small share: __typename runs, a full introspection does not", async () => {
    const small = await post(server, "{ __typename }");
    expect(small.json).toEqual({ data: { __typename: "Query" } });
    const res = await post(server, fullIntrospection);
    expect(res.status).toBe(400);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
    expect(res.json.errors?.[0]?.message).toMatch(/exceeds the limit of 5000 for requests without a token/);
  });

  it("should weigh unbounded lists by a fixed size, so nesting lists multiplies their cost", async () => {
    let query = "id";
    for (let i = 0; i < 5; i++) query = `officers { organization { ${query} } }`;
    const res = await post(server, `{ organizations { ${query} } }`, undefined, server.operatorToken);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
    const shallow = await post(server, "{ organizations { officers { organization { id } } } }", undefined, server.operatorToken);
    expect(shallow.json.errors).toBeUndefined();
  });
});

describe("fragments spread many times", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should price a chain of 40 fragments, each spreading the next twice, at once and refuse it", async () => {
    const defs = Array.from({ length: 40 }, (_, i) =>
      i === 39 ? `fragment F${i} on Query { __typename }` : `fragment F${i} on Query { a${i}: __typename ...F${i + 1} b${i}: __typename ...F${i + 1} }`,
    );
    const started = performance.now();
    const res = await post(server, `{ ...F0 } ${defs.join(" ")}`, undefined, server.operatorToken);
    expect(res.status).toBe(400);
    expect(res.json.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
