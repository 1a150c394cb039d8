/**
 * Findings 2 and 3: quotas per token and per client address, on connections
 * and subscriptions, each refusal RATE_LIMITED with retryAfterSeconds (429 +
 * Retry-After over HTTP; an operation error or close 4429 over graphql-ws);
 * with Redis, one quota across two instances.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rateLimited } from "../../src/kernel/errors.js";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { freshPostgresSchema } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { post, rawSocket } from "./helpers.js";

const RATE_LIMITED = (reason: string) => ({ code: "RATE_LIMITED", reason, retryAfterSeconds: expect.any(Number) });
const LIGHT = "subscription { notifications { id } }";
// pem + chainPem + pkcs7Base64 on every event: cost 28, so it weighs 3 units.
const HEAVY = "subscription { notifications { id certificate { pem chainPem pkcs7Base64 } } }";

describe("quotas in one instance", () => {
  let server: TestServer;
  let org: TestOrganization;
  let dataDir: string | undefined;
  const token = (i: number) => org.officers[i]!.token;

  beforeAll(async () => {
    // Enrolling officers is anonymous and counts against this address's quota: set them up first, then
    // restart on the same data with the tight quotas under test.
    const setup = await startTestServer();
    org = await createOrganization(setup, { officerCount: 5 });
    await setup.close({ keepData: true });
    dataDir = setup.dataDir;
    server = await startTestServer({
      dataDir,
      operatorToken: setup.operatorToken,
      env: {
        KEYPORTAL_TOKEN_RATE: "0.2",
        KEYPORTAL_TOKEN_BURST: "20",
        KEYPORTAL_ADDRESS_RATE: "0.2",
        KEYPORTAL_ADDRESS_BURST: "5",
        KEYPORTAL_MAX_SOCKETS_PER_TOKEN: "2",
        KEYPORTAL_MAX_SUBSCRIPTIONS_PER_SOCKET: "3",
        KEYPORTAL_MAX_SUBSCRIPTION_UNITS_PER_TOKEN: "10",
      },
    });
  });
  afterAll(async () => {
    await server?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("should answer a token over its burst with 429, Retry-After and RATE_LIMITED, and leave other tokens alone", async () => {
    for (let i = 0; i < 20; i++) expect((await post(server, "{ me { role } }", undefined, token(0))).status).toBe(200);
    const refused = await post(server, "{ me { role } }", undefined, token(0));
    expect(refused.status).toBe(429);
    expect(refused.json.errors?.[0]?.extensions).toEqual(RATE_LIMITED("TOO_MANY_REQUESTS"));
    const retryAfter = refused.json.errors![0]!.extensions!.retryAfterSeconds!;
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(5);
    expect(refused.retryAfter).toBe(String(retryAfter));
    expect(refused.json.data ?? undefined).toBeUndefined();
    expect((await post(server, "{ me { role } }", undefined, token(1))).status).toBe(200);
  });

  it("should count downloads against the same token quota (429, Retry-After, RATE_LIMITED)", async () => {
    const res = await fetch(`${server.url}/certificates/00000000-0000-0000-0000-000000000000.pem`, { headers: { authorization: `Bearer ${token(0)}` } });
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(((await res.json()) as { error: unknown }).error).toMatchObject({ code: "RATE_LIMITED", reason: "TOO_MANY_REQUESTS" });
  });

  it("should count graphql-ws operations against the same token quota, refusing that operation only", async () => {
    const socket = await rawSocket(server, token(0)); // token 0 is out of requests since the test above
    await socket.next("connection_ack");
    socket.send({ id: "q", type: "subscribe", payload: { query: "{ me { role } }" } });
    const errors = (await socket.next("error", "q")).payload as Array<{ extensions?: unknown }>;
    expect(errors[0]?.extensions).toEqual(RATE_LIMITED("TOO_MANY_REQUESTS"));
    expect(socket.ws.readyState).toBe(socket.ws.OPEN);
    socket.ws.close();
  });

  it("should limit requests without a token per client address", async () => {
    for (let i = 0; i < 5; i++) expect((await post(server, "{ __typename }")).status).toBe(200);
    const refused = await post(server, "{ __typename }");
    expect(refused.status).toBe(429);
    expect(refused.json.errors?.[0]?.extensions).toEqual(RATE_LIMITED("TOO_MANY_REQUESTS"));
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    // An unknown token is no way around it: it counts as no token.
    expect((await post(server, "{ __typename }", undefined, "kp_not_a_real_token")).status).toBe(429);
  });

  it("should answer a RATE_LIMITED raised by a resolver (a throttle of its own) with 429 and Retry-After too", async () => {
    const organizations = server.app.services.organizations;
    const original = organizations.list;
    organizations.list = async () => {
      throw rateLimited("TOO_MANY_FAILURES", "too many failed attempts", 42);
    };
    try {
      const res = await post(server, "{ organizations { id } }", undefined, server.operatorToken);
      expect(res.status).toBe(429);
      expect(res.retryAfter).toBe("42");
      expect(res.json.errors?.[0]?.extensions).toEqual({ code: "RATE_LIMITED", reason: "TOO_MANY_FAILURES", retryAfterSeconds: 42 });
    } finally {
      organizations.list = original;
    }
  });

  it("should close a third connection of one token with 4429, and accept one again after another closes", async () => {
    const first = await rawSocket(server, token(2));
    await first.next("connection_ack");
    const second = await rawSocket(server, token(2));
    await second.next("connection_ack");
    const third = await rawSocket(server, token(2));
    const closed = await third.closed;
    expect(closed.code).toBe(4429);
    expect(closed.reason).toMatch(/at most 2 connections per token; retry after \d+ s/);
    first.ws.close();
    await first.closed;
    const again = await rawSocket(server, token(2));
    await again.next("connection_ack");
    second.ws.close();
    again.ws.close();
  });

  it("should refuse a fourth subscription on one connection as an error for that operation, and take one after a complete", async () => {
    const socket = await rawSocket(server, token(3));
    await socket.next("connection_ack");
    for (const id of ["s1", "s2", "s3"]) socket.send({ id, type: "subscribe", payload: { query: LIGHT } });
    await new Promise((r) => setTimeout(r, 300)); // sent at once, they are admitted in any order
    socket.send({ id: "s4", type: "subscribe", payload: { query: LIGHT } });
    const errors = (await socket.next("error", "s4")).payload as Array<{ message: string; extensions?: unknown }>;
    expect(errors[0]?.extensions).toEqual(RATE_LIMITED("TOO_MANY_SUBSCRIPTIONS"));
    expect(errors[0]?.message).toMatch(/at most 3 subscriptions per connection/);
    socket.send({ id: "s1", type: "complete" });
    await new Promise((r) => setTimeout(r, 200));
    socket.send({ id: "s5", type: "subscribe", payload: { query: LIGHT } });
    await expect(Promise.race([socket.next("error", "s5"), new Promise((r) => setTimeout(() => r("accepted"), 500))])).resolves.toBe("accepted");
    socket.ws.close();
  });

  it("should count a token's subscriptions by cost across its connections: heavy ones use up the quota sooner", async () => {
    const a = await rawSocket(server, token(4));
    await a.next("connection_ack");
    const b = await rawSocket(server, token(4));
    await b.next("connection_ack");
    // 3 + 3 + 3 = 9 of 10 units: a fourth heavy one (3) is refused, a light one (1) still fits.
    a.send({ id: "h1", type: "subscribe", payload: { query: HEAVY } });
    a.send({ id: "h2", type: "subscribe", payload: { query: HEAVY } });
    b.send({ id: "h3", type: "subscribe", payload: { query: HEAVY } });
    await new Promise((r) => setTimeout(r, 300));
    b.send({ id: "h4", type: "subscribe", payload: { query: HEAVY } });
    const errors = (await b.next("error", "h4")).payload as Array<{ extensions?: unknown }>;
    expect(errors[0]?.extensions).toEqual(RATE_LIMITED("TOO_MANY_SUBSCRIPTIONS"));
    b.send({ id: "l1", type: "subscribe", payload: { query: LIGHT } });
    await expect(Promise.race([b.next("error", "l1"), new Promise((r) => setTimeout(() => r("accepted"), 500))])).resolves.toBe("accepted");
    // Closing a connection gives its subscriptions' units back.
    a.ws.close();
    await a.closed;
    await new Promise((r) => setTimeout(r, 200));
    b.send({ id: "h5", type: "subscribe", payload: { query: HEAVY } });
    await expect(Promise.race([b.next("error", "h5"), new Promise((r) => setTimeout(() => r("accepted"), 500))])).resolves.toBe("accepted");
    b.ws.close();
  });
});

const redisReady = await available("postgres", "redis");

describe.skipIf(!redisReady)("quotas across two instances sharing Redis", () => {
  let schema: Awaited<ReturnType<typeof freshPostgresSchema>>;
  let a: TestServer;
  let b: TestServer;
  let org: TestOrganization;
  const shared = makeTempDir("kp-quota-");

  beforeAll(async () => {
    schema = await freshPostgresSchema();
    const env = {
      REDIS_URL: "redis://127.0.0.1:6379",
      KEYPORTAL_REDIS_PREFIX: `kp-test-${randomBytes(6).toString("hex")}`,
      KEYPORTAL_TOKEN_RATE: "0.1",
      KEYPORTAL_TOKEN_BURST: "6",
      KEYPORTAL_MAX_SOCKETS_PER_TOKEN: "1",
    };
    a = await startTestServer({ databaseUrl: schema.url, dataDir: shared.path, env });
    b = await startTestServer({ databaseUrl: schema.url, dataDir: shared.path, env });
    org = await createOrganization(a, { officerCount: 1 });
  });
  afterAll(async () => {
    await b?.close({ keepData: true });
    await a?.close({ keepData: true });
    await schema?.drop();
    shared.cleanup();
  });

  it("should hold one token's request quota across both instances", async () => {
    const token = org.officers[0]!.token;
    for (let i = 0; i < 6; i++) expect((await post(i % 2 ? b : a, "{ me { role } }", undefined, token)).status).toBe(200);
    const refused = await post(b, "{ me { role } }", undefined, token);
    expect(refused.status).toBe(429);
    expect(refused.json.errors?.[0]?.extensions).toEqual(RATE_LIMITED("TOO_MANY_REQUESTS"));
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    expect((await post(a, "{ me { role } }", undefined, token)).status).toBe(429);
  });

  it("should hold one token's connection limit across both instances, and free it when the connection closes", async () => {
    const token = a.operatorToken;
    const onA = await rawSocket(a, token);
    await onA.next("connection_ack");
    const onB = await rawSocket(b, token);
    expect((await onB.closed).code).toBe(4429);
    onA.ws.close();
    await onA.closed;
    await new Promise((r) => setTimeout(r, 300));
    const again = await rawSocket(b, token);
    await again.next("connection_ack");
    again.ws.close();
  });
});
