/**
 * Starts a real KeyPortal (HTTP + WebSocket on an ephemeral 127.0.0.1 port)
 * on a fresh SQLite file, or on a fresh PostgreSQL schema, for black-box tests.
 */
import "reflect-metadata";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { type App, type AppOverrides, createApp } from "../../src/app.js";
import { ManualClock } from "../../src/kernel/clock.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import type { OutgoingEmail } from "../../src/notifications/mailer.js";
import { enrollmentCodeIn, recordingMailer } from "./mail.js";
import { type DbKind, freshPostgresSchema } from "./postgres.js";

/** Quotas no functional test reaches (test/abuse/ sets real ones). */
export const UNLIMITED_QUOTAS: Record<string, string> = {
  KEYPORTAL_TOKEN_RATE: "1000000",
  KEYPORTAL_TOKEN_BURST: "1000000",
  KEYPORTAL_ADDRESS_RATE: "1000000",
  KEYPORTAL_ADDRESS_BURST: "1000000",
  KEYPORTAL_MAX_SOCKETS_PER_TOKEN: "100000",
  KEYPORTAL_MAX_SUBSCRIPTIONS_PER_SOCKET: "100000",
  KEYPORTAL_MAX_SUBSCRIPTION_UNITS_PER_TOKEN: "1000000",
};

export interface TestServerOptions {
  db?: DbKind;
  /** Reuse a database (two instances on one PostgreSQL schema, or a restart on one SQLite dir). */
  databaseUrl?: string;
  dataDir?: string;
  clock?: ManualClock;
  /** The bootstrap operator's token; pass the previous one when restarting on the same database. */
  operatorToken?: string;
  env?: Record<string, string>;
  overrides?: AppOverrides;
  /**
   * false: start without KEYPORTAL_BOOTSTRAP_TOKEN, as `npm start` does by
   * default; operatorToken is then read from <dataDir>/bootstrap-token.
   */
  bootstrapToken?: false;
}

export interface GraphQLResponse<T = Record<string, unknown>> {
  data?: T | null;
  errors?: Array<{ message: string; path?: string[]; extensions?: { code?: string; reason?: string } }>;
}

export interface TestServer {
  app: App;
  url: string;
  wsUrl: string;
  dataDir: string;
  databaseUrl?: string;
  clock: ManualClock;
  operatorToken: string;
  /** POST /graphql with an optional bearer token. */
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<GraphQLResponse<T>>;
  /** Like gql, but fails the test on any error and returns data. */
  ok<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<T>;
  wsClient(token: string | null, opts?: { onClose?: (code: number, reason: string) => void }): Client;
  /** Every email the server's mailer accepted (SMTP or file sink), oldest first. */
  sentMail: OutgoingEmail[];
  /**
   * The enrollment code in the newest enrollment email to `email`; waits up
   * to 10 s for more than `after` (default 0) enrollment emails to have gone
   * to the address (the email is sent after commit; pass the count seen
   * before a resend to get the new code).
   */
  enrollmentCode(email: string, opts?: { after?: number }): Promise<string>;
  /** Stops the server; removes its data unless keepData. */
  close(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startTestServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(os.tmpdir(), "keyportal-test-"));
  let dropSchema: (() => Promise<void>) | undefined;
  let databaseUrl = opts.databaseUrl;
  if (!databaseUrl && opts.db === "postgres") {
    const schema = await freshPostgresSchema();
    databaseUrl = schema.url;
    dropSchema = schema.drop;
  }
  let operatorToken = opts.operatorToken ?? `kp_test_${randomBytes(24).toString("base64url")}`;
  const config = loadConfig({
    HOST: "127.0.0.1",
    PORT: "0",
    KEYPORTAL_DATA_DIR: dataDir,
    ...(opts.bootstrapToken === false ? {} : { KEYPORTAL_BOOTSTRAP_TOKEN: operatorToken }),
    LOG_LEVEL: process.env.KEYPORTAL_TEST_LOG_LEVEL ?? "silent",
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    // Functional tests send bursts far above a real client's rate; quota tests set their own limits.
    ...UNLIMITED_QUOTAS,
    ...opts.env,
  });
  const clock = opts.clock ?? new ManualClock(new Date("2026-11-28T08:00:00.000Z"));
  const { mailer, sentMail } = recordingMailer(config);
  const app = await createApp(config, { clock, logger: createLogger(config.logLevel), mailer, ...opts.overrides });
  const { url } = await app.start();
  if (opts.bootstrapToken === false) {
    const file = path.join(dataDir, "bootstrap-token");
    operatorToken = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
  }
  const wsUrl = `${url.replace(/^http/, "ws")}/graphql`;

  const gql = async <T>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<GraphQLResponse<T>> => {
    const res = await fetch(`${url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    return (await res.json()) as GraphQLResponse<T>;
  };
  const clients: Client[] = [];
  return {
    app,
    url,
    wsUrl,
    dataDir,
    databaseUrl,
    clock,
    operatorToken,
    gql,
    sentMail,
    enrollmentCode: (email, codeOpts) => enrollmentCodeIn(sentMail, email, codeOpts),
    async ok<T>(query: string, variables?: Record<string, unknown>, token: string | null = operatorToken): Promise<T> {
      const result = await gql<T>(query, variables, token);
      if (result.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
      return result.data as T;
    },
    wsClient(token, clientOpts) {
      const client = createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        lazy: false,
        retryAttempts: 0,
        connectionParams: token ? { authorization: `Bearer ${token}` } : {},
        on: { closed: (event) => clientOpts?.onClose?.((event as CloseEvent).code, (event as CloseEvent).reason) },
        onNonLazyError: () => undefined,
      });
      clients.push(client);
      return client;
    },
    async close(closeOpts) {
      for (const c of clients) await c.dispose();
      await app.stop();
      if (dropSchema && !closeOpts?.keepData) await dropSchema();
      if (!opts.dataDir && !closeOpts?.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
