import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/server.js";

describe("errors over graphql-ws", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  async function errorsOf(query: string, variables?: Record<string, unknown>): Promise<Array<{ message: string; extensions?: Record<string, unknown> }>> {
    const client = server.wsClient(server.operatorToken);
    return new Promise((resolve, reject) => {
      client.subscribe(
        { query, ...(variables ? { variables } : {}) },
        {
          next: (result) => {
            if (result.errors) resolve(result.errors as never);
          },
          error: (errors) => resolve(Array.isArray(errors) ? (errors as never) : reject(errors)),
          complete: () => undefined,
        },
      );
    });
  }

  it("should answer an invalid field with BAD_USER_INPUT / INVALID_REQUEST, as over HTTP", async () => {
    const errors = await errorsOf("query { nope }");
    expect(errors[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_REQUEST" });
    expect(errors[0]?.message).toContain("nope");
  });

  it("should answer a syntax error with BAD_USER_INPUT / INVALID_QUERY", async () => {
    const errors = await errorsOf("query { me ");
    expect(errors[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_QUERY" });
  });

  it("should answer an invalid document the same each time it is sent", async () => {
    for (let i = 0; i < 2; i++) {
      const errors = await errorsOf("subscription { notifications { nope } }");
      expect(errors[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_REQUEST" });
    }
  });

  it("should check the variables of every subscribe against a document validated by an earlier one", async () => {
    const query = "query($id: ID!) { organization(id: $id) { id } }";
    const client = server.wsClient(server.operatorToken);
    // The first use validates the document (and keeps it); the operation runs to its end.
    await new Promise<void>((resolve, reject) => {
      client.subscribe({ query, variables: { id: "00000000-0000-0000-0000-000000000000" } }, { next: () => undefined, error: reject, complete: resolve });
    });
    const errors = await errorsOf(query, {});
    expect(errors[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_VARIABLES" });
    expect(errors[0]?.message).toContain("$id");
  });

  it("should price every subscribe with its own variables, also when an earlier one validated the same text", async () => {
    const query = "query($first: Int) { certificates(first: $first) { nodes { id pem } } }";
    const client = server.wsClient(server.operatorToken);
    const cheap = await new Promise<{ errors?: unknown }>((resolve, reject) => {
      client.subscribe({ query, variables: { first: 2 } }, { next: resolve, error: reject, complete: () => undefined });
    });
    expect(cheap.errors).toBeUndefined();
    const errors = await errorsOf(query, { first: 5000 });
    expect(errors[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "QUERY_TOO_COMPLEX" });
  });
});
