/**
 * Two KeyPortal instances on one PostgreSQL schema and one Redis, each
 * reaching them through its own fault proxy, with short deadlines so that a
 * fault test stays within seconds.
 */
import { randomBytes } from "node:crypto";
import { pino, type Logger } from "pino";
import { afterAll, afterEach, beforeAll, vi } from "vitest";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { ManualClock } from "../../src/kernel/clock.js";
import { makeTempDir } from "../pki/helpers.js";
import { type FaultProxy, startFaultProxy } from "../support/fault-proxy.js";
import { freshPostgresSchema } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";

/** Deadlines of the instances under test (production defaults are in config.ts). */
export const FAST_DEADLINES = {
  KEYPORTAL_DB_CONNECT_TIMEOUT: "1s",
  KEYPORTAL_DB_QUERY_TIMEOUT: "1s",
  KEYPORTAL_MUTATION_DEADLINE: "3s",
  KEYPORTAL_LEASE_TTL: "2s",
  KEYPORTAL_WORKER_DEADLINE: "4s",
};

export interface FaultyInstance {
  server: TestServer;
  pg: FaultProxy;
  redis: FaultProxy;
}

export interface FaultyCluster {
  a: FaultyInstance;
  b: FaultyInstance;
  clock: ManualClock;
  schemaUrl: string;
  close(): Promise<void>;
}

function throughProxy(url: string, proxy: FaultProxy): string {
  const parsed = new URL(url);
  parsed.host = proxy.address;
  return parsed.toString();
}

/** A logger that keeps every line, for tests that count what an outage logs. */
export function capturingLogger(): { logger: Logger; lines: Array<{ level: number; msg: string } & Record<string, unknown>> } {
  const lines: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

export async function startFaultyCluster(
  opts: { env?: Record<string, string>; clock?: ManualClock; loggers?: { a?: Logger; b?: Logger } } = {},
): Promise<FaultyCluster> {
  const schema = await freshPostgresSchema();
  const clock = opts.clock ?? new ManualClock("2027-05-01T10:00:00.000Z");
  const shared = makeTempDir("kp-faults-");
  const prefix = `kp-test-${randomBytes(6).toString("hex")}`;
  const start = async (operatorToken?: string, logger?: Logger): Promise<FaultyInstance> => {
    const pg = await startFaultProxy({ port: 5432 });
    const redis = await startFaultProxy({ port: 6379 });
    const server = await startTestServer({
      databaseUrl: throughProxy(schema.url, pg),
      dataDir: shared.path,
      clock,
      operatorToken,
      env: { REDIS_URL: `redis://${redis.address}`, KEYPORTAL_REDIS_PREFIX: prefix, ...FAST_DEADLINES, ...opts.env },
      overrides: logger ? { logger } : undefined,
    });
    return { server, pg, redis };
  };
  const a = await start(undefined, opts.loggers?.a);
  const b = await start(a.server.operatorToken, opts.loggers?.b);
  return {
    a,
    b,
    clock,
    schemaUrl: schema.url,
    async close() {
      for (const instance of [b, a]) {
        instance.pg.heal();
        instance.redis.heal();
        await instance.server.close({ keepData: true });
        await instance.pg.close();
        await instance.redis.close();
      }
      await schema.drop();
      shared.cleanup();
    },
  };
}

export interface HttpOutcome<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: { data?: T | null; errors?: Array<{ message: string; extensions?: { code?: string; reason?: string } }> };
  ms: number;
}

/** POST /graphql with status, headers and time taken; fails the test if no answer comes within timeoutMs. */
export async function post<T = Record<string, unknown>>(
  server: TestServer,
  query: string,
  variables: Record<string, unknown>,
  opts: { token?: string | null; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpOutcome<T>> {
  const started = performance.now();
  const token = opts.token === undefined ? server.operatorToken : opts.token;
  const res = await fetch(`${server.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...opts.headers },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as HttpOutcome<T>["body"], ms: performance.now() - started };
}

export const REGISTER_OFFICER = `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`;

let counter = 0;
export function officerInput(organizationId: string): Record<string, unknown> {
  counter += 1;
  return { input: { organizationId, name: `Officer ${counter}`, email: `fault-${counter}-${randomBytes(3).toString("hex")}@bank.example` } };
}

/**
 * Inside a describe: a cluster with one organization of two officers and a
 * temp dir for keys, started once; after each test injected faults (spies)
 * are undone and every proxy healed.
 */
export function useFaultyCluster(tmpPrefix: string): { cluster: () => FaultyCluster; org: () => TestOrganization; tmp: string } {
  let cluster: FaultyCluster | undefined;
  let org: TestOrganization | undefined;
  const tmp = makeTempDir(tmpPrefix);
  beforeAll(async () => {
    cluster = await startFaultyCluster();
    org = await createOrganization(cluster.a.server, { officerCount: 2 });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    for (const instance of cluster ? [cluster.a, cluster.b] : []) {
      instance.pg.heal();
      instance.redis.heal();
    }
  });
  afterAll(async () => {
    await cluster?.close();
    tmp.cleanup();
  });
  return { cluster: () => cluster!, org: () => org!, tmp: tmp.path };
}
