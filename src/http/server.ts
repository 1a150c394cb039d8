import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { expressMiddleware } from "@as-integrations/express5";
import express, { type NextFunction, type Request, type Response } from "express";
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { type ExecutionArgs, type GraphQLError, type GraphQLSchema, parse } from "graphql";
import { CloseCode } from "graphql-ws";
import { useServer } from "graphql-ws/use/ws";
import type { Logger } from "pino";
import { WebSocketServer, type WebSocket } from "ws";
import type { Database } from "../db/data-source.js";
import { DomainError, HTTP_STATUS } from "../errors.js";
import type { EventBus } from "../events.js";
import { type Context, createLoaders, type LoaderSources } from "../graphql/context.js";
import { createErrorFormatter } from "../graphql/errors.js";
import { enforceQueryLimits } from "../graphql/limits.js";
import { bearerToken } from "../officers/tokens.js";
import type { Metrics } from "../metrics.js";
import type { Viewer } from "../viewer.js";

export const BODY_LIMIT = "1mb";

export interface Authenticator {
  authenticate(token: string): Promise<Viewer | null>;
  stillValid(viewer: Viewer): Promise<boolean>;
  /** The viewer's token has expired (a check in memory, for sweeping open WebSockets). */
  expired(viewer: Viewer): boolean;
}

/** Extra REST routes (downloads, CRLs, KMS certificates), mounted by their features. */
export type RouteInstaller = (router: express.Router, helpers: RouteHelpers) => void;

export interface RouteHelpers {
  /** The viewer of a request with `Authorization: Bearer`, or null. */
  viewerOf(req: Request): Promise<Viewer | null>;
  /** Sends a DomainError as JSON with its HTTP status; anything else as a bare 500. */
  sendError(res: Response, error: unknown): void;
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
  routes: RouteInstaller[];
  /** Directory of the built GraphiQL page (index.html and assets). */
  webDir: string;
  metrics: Metrics;
}

export interface RunningHttpServer {
  server: http.Server;
  url: string;
  stop(): Promise<void>;
}

interface SocketExtra extends Record<PropertyKey, unknown> {
  socket: WebSocket;
  request: http.IncomingMessage;
  viewer?: Viewer;
}

export async function startHttpServer(opts: HttpServerOptions, host: string, port: number): Promise<RunningHttpServer> {
  const { schema, logger, auth } = opts;
  const formatError = createErrorFormatter(logger);
  const app = express();
  app.disable("x-powered-by");
  const server = http.createServer(app);

  const viewerOf = async (req: Request): Promise<Viewer | null> => {
    const token = bearerToken(req.headers.authorization);
    return token ? auth.authenticate(token) : null;
  };
  const sendError = (res: Response, error: unknown) => {
    if (error instanceof DomainError) {
      res.status(HTTP_STATUS[error.code]).json({ error: { code: error.code, reason: error.reason, message: error.message } });
      return;
    }
    logger.error({ err: error }, "unexpected error in a REST route");
    res.status(500).json({ error: { code: "INTERNAL_SERVER_ERROR", reason: "INTERNAL", message: "Internal server error" } });
  };

  // --- WebSocket subscriptions (graphql-ws) on the same port and path.
  const wsServer = new WebSocketServer({ server, path: "/graphql", maxPayload: 1024 * 1024 });
  const sockets = new Set<SocketExtra>();
  const wsCleanup = useServer<Record<string, unknown>, SocketExtra>(
    {
      schema,
      onConnect: async (ctx) => {
        const raw = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        const token = typeof raw === "string" ? bearerToken(raw) ?? raw : null;
        if (!token) {
          ctx.extra.socket.close(CloseCode.Unauthorized, "Unauthorized: connectionParams.authorization is required");
          return false;
        }
        const viewer = await auth.authenticate(token);
        if (!viewer) return false; // 4403 Forbidden: unknown, revoked or deactivated
        ctx.extra.viewer = viewer;
        sockets.add(ctx.extra);
        return true;
      },
      onClose: (ctx) => {
        sockets.delete(ctx.extra);
      },
      context: (ctx): Context => ({ viewer: ctx.extra.viewer ?? null, loaders: createLoaders(opts.loaderSources), feeds: opts.feeds }),
      onSubscribe: async (ctx, _id, payload) => {
        const viewer = ctx.extra.viewer;
        if (!viewer || !(await auth.stillValid(viewer))) {
          ctx.extra.socket.close(CloseCode.Forbidden, "Forbidden");
          return [];
        }
        try {
          const document = parse(payload.query);
          enforceQueryLimits(schema, document, payload.operationName, payload.variables);
        } catch (error) {
          const e = error as GraphQLError;
          return [e];
        }
        return undefined;
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
    formatError,
    includeStacktraceInErrorResponses: false,
    csrfPrevention: true,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer: server }),
      {
        async requestDidStart() {
          return {
            async didResolveOperation({ document, operationName, request }) {
              enforceQueryLimits(schema, document, operationName, request.variables);
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
      res.type("text/plain; version=0.0.4").send(await opts.metrics.render());
    } catch (error) {
      sendError(res, error);
    }
  });

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/readyz", async (_req, res) => {
    const ready = await opts.db.isReady();
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not ready" });
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
    expressMiddleware(apollo, {
      context: async ({ req }) => {
        const token = bearerToken(req.headers.authorization);
        const viewer = token ? await auth.authenticate(token) : null;
        return { viewer, loaders: createLoaders(opts.loaderSources), clientAddress: req.socket.remoteAddress ?? "unknown" };
      },
    }),
  );

  const router = express.Router();
  for (const install of opts.routes) install(router, { viewerOf, sendError });
  app.use(router);

  // Body too large, malformed JSON: a JSON error, never an HTML page or a stack trace.
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    const e = error as { type?: string; status?: number };
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
  const url = `http://${urlHost}:${address.port}`;

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
