import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginCacheControlDisabled } from "@apollo/server/plugin/disabled";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { expressMiddleware } from "@as-integrations/express5";
import express, { type NextFunction, type Request, type Response } from "express";
import { existsSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import path from "node:path";
import { type DocumentNode, type ExecutionArgs, GraphQLError, type GraphQLSchema, parse, validate } from "graphql";
import { CloseCode } from "graphql-ws";
import { useServer } from "graphql-ws/use/ws";
import type { Logger } from "pino";
import { WebSocketServer, type WebSocket } from "ws";
import { bindIdempotencyKey } from "../audit/idempotency.js";
import type { Database } from "../db/data-source.js";
import { isOutage } from "../kernel/driver.js";
import { httpOf, restErrorBody, toClientError } from "../kernel/client-error.js";
import { DomainError, type ErrorCode, isReason, type Reason, RESPONSE_STATUS_CODES, unavailable } from "../kernel/errors.js";
import type { EventBus } from "../kernel/events.js";
import { type Context, createLoaders, type LoaderSources } from "../graphql/context.js";
import { ValidatedDocuments } from "../graphql/documents.js";
import { asRequestError, createErrorFormatter, httpForErrorReasons, requestError } from "../graphql/errors.js";
import {
  enforceNestingLimits,
  enforceQueryCost,
  enforceQueryLimits,
  enforceVariableTypes,
  MAX_QUERY_TOKENS,
  type QueryLimits,
  selectedOperation,
} from "../graphql/limits.js";
import type { Lease, Quotas } from "../quotas.js";
import { bearerToken } from "../officers/tokens.js";
import { checkReadiness, type RuntimeHealth } from "../health.js";
import type { Metrics } from "../metrics.js";
import { executeKeyed, idempotencyKeyMiddleware, subscribeExecutionArgs } from "./idempotency.js";
import { ROUTES } from "../features.js";
import type { RouteInstallers } from "./routes.js";
export type { RouteHelpers, RouteInstaller, RouteInstallers } from "./routes.js";
import type { Viewer } from "../viewer.js";

export const BODY_LIMIT = "1mb";
/** /readyz answers within this, whatever the database does (a hung check means "unreachable"). */
export const READINESS_TIMEOUT_MS = 2000;

export interface Authenticator {
  authenticate(token: string): Promise<Viewer | null>;
  stillValid(viewer: Viewer): Promise<boolean>;
  /** The viewer's token has expired (a check in memory, for sweeping open WebSockets). */
  expired(viewer: Viewer): boolean;
}


export interface HttpServerOptions {
  schema: GraphQLSchema;
  logger: Logger;
  db: Database;
  auth: Authenticator;
  loaderSources: LoaderSources;
  /** Event sources for subscriptions (Context.feeds). */
  feeds?: Context["feeds"];
  bus: EventBus;
  /** An installer for every route factory the features declare (src/features.ts ROUTES). */
  routes: RouteInstallers;
  /** Directory of the built GraphiQL page (index.html and assets). */
  webDir: string;
  metrics: Metrics;
  queryLimits: QueryLimits;
  quotas: Quotas;
  /** Serve HTTPS and WSS with this certificate (PEM, leaf first, then its chain) and key. */
  tls?: { certPem: string; keyPem: string };
  /** Redis, mutation queue and background loops, for /readyz. */
  runtimeHealth(): RuntimeHealth;
}

/** graphql-ws close code for a connection refused by a quota (HTTP 429's counterpart). */
export const CLOSE_RATE_LIMITED = 4429;

export interface RunningHttpServer {
  server: http.Server;
  url: string;
  stop(): Promise<void>;
}

interface SocketExtra extends Record<PropertyKey, unknown> {
  socket: WebSocket;
  viewer?: Viewer;
  socketLease?: Lease;
  /** This connection's live subscriptions, by operation id, each holding its share of the token's quota. */
  subscriptionLeases?: Map<string, Lease>;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/** query, variables and operationName of a POST body or a GET query string (variables as JSON there). */
function graphqlParams(req: Request): { query: unknown; variables: unknown; operationName: string | undefined } {
  const source = (req.method === "GET" ? req.query : req.body ?? {}) as Record<string, unknown>;
  let variables = source.variables;
  if (typeof variables === "string") {
    try {
      variables = JSON.parse(variables) as unknown;
    } catch {
      variables = undefined; // Apollo reports it
    }
  }
  return { query: source.query, variables, operationName: typeof source.operationName === "string" ? source.operationName : undefined };
}

const parseLimited = (source: string): DocumentNode => parse(source, { maxTokens: MAX_QUERY_TOKENS });

/** Errors thrown by our checks become the errors of that request (a DomainError keeps its code and reason). */
function asGraphQLErrors(error: unknown): GraphQLError[] {
  if (error instanceof DomainError) return [asRequestError(error)];
  if (error instanceof GraphQLError) return [error];
  throw error;
}

export async function startHttpServer(opts: HttpServerOptions, host: string, port: number): Promise<RunningHttpServer> {
  const { schema, logger, auth } = opts;
  const formatError = createErrorFormatter(logger);
  const app = express();
  app.disable("x-powered-by");
  const server = opts.tls ? https.createServer({ cert: opts.tls.certPem, key: opts.tls.keyPem }, app) : http.createServer(app);

  const viewerOf = async (req: Request): Promise<Viewer | null> => {
    const token = bearerToken(req.headers.authorization);
    return token ? auth.authenticate(token) : null;
  };
  // The caller's viewer, counted against its request quota (its token's, or its address's without one).
  const admit = async (req: Request): Promise<Viewer | null> => {
    const viewer = await viewerOf(req);
    await opts.quotas.request(viewer ? { tokenId: viewer.tokenId } : { address: req.socket.remoteAddress ?? "unknown" });
    return viewer;
  };
  const sendError = (res: Response, error: unknown) => {
    const mapped = toClientError(error);
    if (mapped.kind === "internal") logger.error({ err: error }, "unexpected error in a REST route");
    else if (!(error instanceof DomainError)) logger.warn({ err: { message: (error as Error).message } }, "request failed: database or redis unavailable");
    res.set(mapped.headers).status(mapped.httpStatus).json(restErrorBody(mapped));
  };

  // --- WebSocket subscriptions (graphql-ws) on the same port and path.
  // noServer: upgrades are handed over below. Attached to the HTTP server, ws would re-emit its errors
  // (EADDRINUSE...) and graphql-ws print them with a stack; listen() below reports them, once.
  const wsServer = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (new URL(req.url ?? "/", "http://localhost").pathname !== "/graphql") {
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
      return;
    }
    wsServer.handleUpgrade(req, socket, head, (ws) => wsServer.emit("connection", ws, req));
  });
  const sockets = new Set<SocketExtra>();
  const documents = new ValidatedDocuments();
  const wsCleanup = useServer<Record<string, unknown>, SocketExtra>(
    {
      schema,
      onConnect: async (ctx) => {
        // graphql-ws keeps the upgrade request (headers, socket state) in every connection's context for as long as it
        // is open; nothing here reads it after the upgrade.
        Reflect.deleteProperty(ctx.extra, "request");
        const raw = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        const token = typeof raw === "string" ? bearerToken(raw) ?? raw : null;
        if (!token) {
          ctx.extra.socket.close(CloseCode.Unauthorized, "Unauthorized: connectionParams.authorization is required");
          return false;
        }
        const viewer = await auth.authenticate(token);
        if (!viewer) return false; // 4403 Forbidden: unknown, revoked or deactivated
        try {
          ctx.extra.socketLease = await opts.quotas.openSocket(viewer.tokenId);
        } catch (error) {
          const refusal = toClientError(error);
          if (refusal.kind !== "refusal") throw error;
          ctx.extra.socket.close(CLOSE_RATE_LIMITED, `Rate limited: ${refusal.message}; retry after ${refusal.retryAfterSeconds} s`);
          return false;
        }
        ctx.extra.viewer = viewer;
        ctx.extra.subscriptionLeases = new Map();
        sockets.add(ctx.extra);
        return true;
      },
      onClose: (ctx) => {
        sockets.delete(ctx.extra);
        ctx.extra.socketLease?.release();
        for (const lease of ctx.extra.subscriptionLeases?.values() ?? []) lease.release();
        ctx.extra.subscriptionLeases?.clear();
      },
      onComplete: (ctx, id) => {
        ctx.extra.subscriptionLeases?.get(id)?.release();
        ctx.extra.subscriptionLeases?.delete(id);
      },
      // The same Idempotency-Key as over HTTP, in the subscribe message's extensions.idempotencyKey.
      execute: executeKeyed,
      onSubscribe: async (ctx, id, payload) => {
        const viewer = ctx.extra.viewer;
        if (!viewer || !(await auth.stillValid(viewer))) {
          ctx.extra.socket.close(CloseCode.Forbidden, "Forbidden");
          return [];
        }
        try {
          enforceNestingLimits(payload.query, payload.variables);
          await opts.quotas.request({ tokenId: viewer.tokenId });
          const known = documents.get(payload.query);
          const document = known ?? parseLimited(payload.query);
          // Cost before validation: validating a huge document is itself the expensive part.
          const cost = enforceQueryCost(schema, document, payload.operationName, payload.variables, { limits: opts.queryLimits });
          if (!known) {
            const invalid = validate(schema, document);
            if (invalid.length > 0) return invalid;
            documents.remember(payload.query, document);
          }
          enforceVariableTypes(schema, document, payload.operationName, payload.variables);
          if (selectedOperation(document, payload.operationName)?.operation === "subscription") {
            // The connection's slot is taken before waiting for the token's quota, so concurrent subscribes count too.
            const leases = ctx.extra.subscriptionLeases!;
            opts.quotas.checkSocketSubscriptions(leases.size);
            leases.set(id, { release: () => undefined });
            let lease: Lease;
            try {
              lease = await opts.quotas.subscribe(viewer.tokenId, cost);
            } catch (error) {
              leases.delete(id);
              throw error;
            }
            if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) lease.release(); // closed meanwhile
            else leases.set(id, lease);
          }
          const context: Context = { viewer, loaders: createLoaders(opts.loaderSources), feeds: opts.feeds };
          return subscribeExecutionArgs(schema, document, payload, viewer.officer.id, context);
        } catch (error) {
          return asGraphQLErrors(error);
        }
      },
      onNext: (_ctx, _id, _payload, _args: ExecutionArgs, result) => {
        if (!result.errors) return undefined;
        return { ...result, errors: result.errors.map((e) => formatError(e.toJSON(), e)) } as unknown as typeof result;
      },
      onError: (_ctx, _id, _payload, errors) => errors.map((e) => formatError(e.toJSON(), e)) as unknown as readonly GraphQLError[],
    },
    wsServer,
  );
  // Access revoked anywhere (token revoked, officer deactivated): close that viewer's sockets at once.
  const unsubscribeRevocations = opts.bus.subscribe("access.revoked", (event) => {
    for (const extra of sockets) {
      const v = extra.viewer;
      if (!v) continue;
      if ((event.tokenId && v.tokenId === event.tokenId) || (event.officerId && v.officer.id === event.officerId)) {
        extra.socket.close(CloseCode.Forbidden, "Forbidden: access revoked");
      }
    }
  });

  // Tokens that expire while their WebSocket is open: close those sockets, checked every second.
  const expirySweep = setInterval(() => {
    for (const extra of sockets) {
      if (extra.viewer && auth.expired(extra.viewer)) extra.socket.close(CloseCode.Forbidden, "Forbidden: token expired");
    }
  }, 1000);
  expirySweep.unref();

  // --- Apollo Server over HTTP POST (and GET queries from scripts).
  const apollo = new ApolloServer<Context>({
    schema,
    introspection: true,
    parseOptions: { maxTokens: MAX_QUERY_TOKENS },
    // main.ts owns SIGTERM/SIGINT. Apollo's own handler would race it, and a second stop() waiting on Apollo's
    // barrier never returns once the first has finished (the shutdown then hung until the forced exit).
    stopOnTerminationSignals: false,
    formatError,
    includeStacktraceInErrorResponses: false,
    csrfPrevention: true,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer: server }),
      // The API gives no cache hints, and Apollo's cache-control plugin wraps every field's resolver to collect them
      // (about 5% of a nested page's CPU). Every answer is private to its viewer: no-store, set below.
      ApolloServerPluginCacheControlDisabled(),
      {
        async requestDidStart() {
          return {
            // After validation, for every request (admission below saw the text, Apollo may have a cached document):
            // cost with these variables, then their types.
            async didResolveOperation({ document, operationName, operation, request, contextValue }) {
              if (operation?.operation === "subscription") {
                throw requestError(
                  "BAD_USER_INPUT",
                  "SUBSCRIPTION_OVER_HTTP",
                  "subscriptions run over WebSocket (graphql-ws) at /graphql, not over HTTP",
                );
              }
              enforceQueryLimits(schema, document, operationName, request.variables, {
                limits: opts.queryLimits,
                anonymous: !contextValue.viewer,
              });
            },
            // An outage (reason UNAVAILABLE) is 503 with Retry-After; an error raised while executing whose code sets the
            // response's status (RATE_LIMITED from a resolver's throttle: 429 with Retry-After) answers with it, as it
            // would outside GraphQL.
            async willSendResponse({ response }) {
              response.http.headers.set("cache-control", "no-store");
              if (response.body.kind !== "single" || response.http.status !== undefined) return;
              const errors = response.body.singleResult.errors;
              const outage = httpForErrorReasons(errors);
              if (outage) {
                response.http.status = outage.status;
                for (const [name, value] of Object.entries(outage.headers)) response.http.headers.set(name, value);
                return;
              }
              const decisive = errors?.find((e) => RESPONSE_STATUS_CODES.has(e.extensions?.code as ErrorCode) && isReason(e.extensions?.reason));
              if (!decisive) return;
              const retryAfter = decisive.extensions?.retryAfterSeconds;
              const http = httpOf(decisive.extensions!.code as ErrorCode, decisive.extensions!.reason as Reason, typeof retryAfter === "number" ? retryAfter : undefined);
              response.http.status = http.status;
              for (const [name, value] of Object.entries(http.headers)) response.http.headers.set(name, value);
            },
          };
        },
      },
    ],
  });
  await apollo.start();

  // Every request's route, status and duration, for /metrics (durations are monotonic time, not domain time).
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    const path = req.path; // mounted routers rewrite req.path before the response finishes
    res.on("finish", () => {
      opts.metrics.recordHttpRequest(req.method, path, res.statusCode, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  });
  app.get("/metrics", async (_req, res) => {
    try {
      res.type(opts.metrics.contentType).send(await opts.metrics.render());
    } catch (error) {
      sendError(res, error);
    }
  });

  // The URL the server logs at start is its root: send a browser on to GraphiQL.
  app.get("/", (_req, res) => {
    res.redirect(302, "/graphql");
  });

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    const report = await checkReadiness(() => opts.db.readiness(), opts.runtimeHealth(), READINESS_TIMEOUT_MS);
    res.status(report.ready ? 200 : 503).json(report.body);
  });

  // GraphiQL: a browser asking for /graphql gets the page; everything else goes to Apollo.
  const indexHtml = path.join(opts.webDir, "index.html");
  app.use("/graphiql", express.static(opts.webDir, { index: false, immutable: true, maxAge: "1h" }));
  app.get("/graphql", (req, res, next) => {
    if (req.accepts(["application/json", "application/graphql-response+json", "text/html"]) !== "text/html") return next();
    if (!existsSync(indexHtml)) {
      res.status(503).type("text/plain").send("GraphiQL is not built: run `npm run build:web`.\n");
      return;
    }
    res.sendFile(indexHtml);
  });

  app.use(
    "/graphql",
    express.json({ limit: BODY_LIMIT }),
    // Admission, before Apollo parses and validates (work that grows with the document): the caller's quota, then
    // nesting too deep for anything recursive, then the operation's cost. Refusals answer here, cheaply.
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        const viewer = await admit(req);
        res.locals.viewer = viewer;
        const { query, variables, operationName } = graphqlParams(req);
        enforceNestingLimits(query, variables);
        let document: DocumentNode | undefined;
        try {
          document = typeof query === "string" ? parseLimited(query) : undefined;
        } catch {
          document = undefined; // Apollo reports the syntax error itself
        }
        if (document) {
          enforceQueryCost(schema, document, operationName, isRecord(variables) ? variables : undefined, {
            limits: opts.queryLimits,
            anonymous: !viewer,
          });
        }
      } catch (error) {
        const [refusal] = asGraphQLErrors(!(error instanceof DomainError) && isOutage(error) ? unavailable() : error);
        const http = refusal!.extensions.http as { status?: number; headers?: Map<string, string> } | undefined;
        for (const [name, value] of http?.headers ?? []) res.setHeader(name, value);
        res.status(http?.status ?? 400).json({ errors: [formatError(refusal!.toJSON(), refusal)] });
        return;
      }
      next();
    },
    // Idempotency-Key: a retried mutation returns what the first attempt committed (audit/idempotency.ts).
    idempotencyKeyMiddleware,
    expressMiddleware(apollo, {
      context: async ({ req, res }) => {
        const viewer = (res.locals.viewer as Viewer | null) ?? null;
        bindIdempotencyKey(viewer?.officer.id);
        return { viewer, loaders: createLoaders(opts.loaderSources), clientAddress: req.socket.remoteAddress ?? "unknown" };
      },
    }),
  );

  const router = express.Router();
  for (const factory of ROUTES) {
    const install = opts.routes.get(factory);
    if (!install) throw new Error(`no route installer registered for ${factory.name}`);
    install(router, { viewerOf: admit, sendError });
  }
  app.use(router);

  // Body too large, malformed JSON: a JSON error, never an HTML page or a stack trace.
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    const e = error as { type?: string; status?: number };
    if (e.type === "entity.too.large" || e.type === "entity.parse.failed") {
      logger.info({ code: "BAD_USER_INPUT", reason: e.type === "entity.too.large" ? "PAYLOAD_TOO_LARGE" : "INVALID_JSON" }, "request refused");
    }
    if (e.type === "entity.too.large") {
      res.status(413).json({
        errors: [{ message: `request body exceeds ${BODY_LIMIT}`, extensions: { code: "BAD_USER_INPUT", reason: "PAYLOAD_TOO_LARGE" } }],
      });
      return;
    }
    if (e.type === "entity.parse.failed") {
      res.status(400).json({ errors: [{ message: "request body is not valid JSON", extensions: { code: "BAD_USER_INPUT", reason: "INVALID_JSON" } }] });
      return;
    }
    sendError(res, error);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `${opts.tls ? "https" : "http"}://${urlHost}:${address.port}`;

  let stopping: Promise<void> | null = null;
  return {
    server,
    url,
    stop() {
      stopping ??= (async () => {
        unsubscribeRevocations();
        clearInterval(expirySweep);
        // Tell subscribers we are going away, then stop accepting and drain HTTP.
        for (const client of wsServer.clients) client.close(1001, "Server shutting down");
        await wsCleanup.dispose();
        await new Promise<void>((resolve) => wsServer.close(() => resolve()));
        await apollo.stop();
        if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return stopping;
    },
  };
}
