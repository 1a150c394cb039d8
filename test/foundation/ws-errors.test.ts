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

  async function errorsOf(query: string): Promise<Array<{ message: string; extensions?: Record<string, unknown> }>> {
    const client = server.wsClient(server.operatorToken);
    return new Promise((resolve, reject) => {
      client.subscribe(
        { query },
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
});
