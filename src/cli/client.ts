/** A small GraphQL-over-HTTP client with messages a person can act on. */

/**
 * Exit codes of the keyportal CLI (also in `keyportal help` and the README).
 * Scripts branch on them, so they do not change.
 */
export const EXIT = {
  OK: 0,
  /** The server refused the request (bad input, conflict, precondition) or a local file problem. */
  FAILED: 1,
  /** No token, or the server does not know it (unknown, revoked, expired). */
  UNAUTHENTICATED: 2,
  /** The token is fine but may not do this. */
  FORBIDDEN: 3,
  /** No such object, or not visible with this token. */
  NOT_FOUND: 4,
  /** The server cannot be reached or is not a KeyPortal server. */
  UNREACHABLE: 5,
  /** Wrong command line: unknown command or option, missing or malformed value. */
  USAGE: 64,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.FAILED,
    /** The server's extensions.code and extensions.reason, when it refused. */
    readonly code?: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}

interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string; reason?: string };
}

export class KeyPortalClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  private headers(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private async fetch(path: string, init: RequestInit): Promise<Response> {
    let url: URL;
    try {
      url = new URL(path, this.baseUrl);
    } catch {
      throw new CliError(`"${this.baseUrl}" is not a valid URL; pass --url http://host:port`, EXIT.USAGE);
    }
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
      throw new CliError(`cannot reach KeyPortal at ${this.baseUrl} (${cause}); check --url or KEYPORTAL_URL`, EXIT.UNREACHABLE);
    }
  }

  async graphql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const res = await this.fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", ...this.headers() },
      body: JSON.stringify({ query, variables }),
    });
    let body: { data?: T; errors?: GraphQLErrorShape[] };
    try {
      body = (await res.json()) as typeof body;
    } catch {
      throw new CliError(`${this.baseUrl} answered HTTP ${res.status} without GraphQL JSON; is this a KeyPortal server?`, EXIT.UNREACHABLE);
    }
    const error = body.errors?.[0];
    if (error) throw describeError(error);
    if (!body.data) throw new CliError("the server returned no data", EXIT.UNREACHABLE);
    return body.data;
  }

  async download(path: string): Promise<Buffer> {
    const res = await this.fetch(path, { headers: this.headers() });
    if (res.status === 200) return Buffer.from(await res.arrayBuffer());
    let error: GraphQLErrorShape | undefined;
    try {
      const body = (await res.json()) as { error?: { message: string; code: string; reason: string } };
      if (body.error) error = { message: body.error.message, extensions: { code: body.error.code, reason: body.error.reason } };
    } catch {
      // not JSON
    }
    throw describeError(error ?? { message: `HTTP ${res.status}` });
  }
}

export function describeError(error: GraphQLErrorShape): CliError {
  const code = error.extensions?.code;
  const reason = error.extensions?.reason;
  switch (code) {
    case "UNAUTHENTICATED":
      return new CliError(
        "the server refused the token: it is missing, unknown, expired or revoked; set KEYPORTAL_TOKEN or --token-file",
        EXIT.UNAUTHENTICATED,
        code,
        reason,
      );
    case "FORBIDDEN":
      return new CliError(`not allowed: ${error.message}`, EXIT.FORBIDDEN, code, reason);
    case "NOT_FOUND":
      return new CliError(`not found: ${error.message}`, EXIT.NOT_FOUND, code, reason);
    default:
      return new CliError(`${error.message}${code ? ` [${code}${reason && reason !== code ? `/${reason}` : ""}]` : ""}`, EXIT.FAILED, code, reason);
  }
}

export interface WatchedNotification {
  id: string;
  type: string;
  occurredAt: string;
  message: string;
  daysUntilExpiry: number | null;
  certificate: { id: string; serialNumber: string; commonName: string; environment: string; kind: string; notAfter: string } | null;
  certificateSigningRequest: { id: string; status: string } | null;
  delegation: { id: string; status: string } | null;
}

const WATCH = `subscription Watch($after: String, $types: [NotificationType!]) {
  notifications(after: $after, types: $types) {
    id type occurredAt message daysUntilExpiry
    certificate { id serialNumber commonName environment kind notAfter }
    certificateSigningRequest { id status }
    delegation { id status }
  }
}`;

const LAST_PAGE = `query Cursor($after: String, $types: [NotificationType!]) {
  notifications(after: $after, first: 500, types: $types) { pageInfo { hasNextPage endCursor } }
}`;

export interface WatchOptions {
  /** Resume after this cursor; without it, from the newest notification at start (nothing older is replayed). */
  after?: string;
  types?: string[];
  /** Reconnect delays: doubling from initialMs up to maxMs, each with up to 50% jitter. */
  backoff?: { initialMs: number; maxMs: number };
  /** Connection lost, reconnecting, reconnected: one line each. */
  onStatus?: (line: string) => void;
}

/** The cursor of the newest visible notification now ("0" when there is none), so that a watch starts without a gap. */
async function currentCursor(client: KeyPortalClient, types: string[] | undefined): Promise<string> {
  let after: string | null = null;
  for (;;) {
    const data: { notifications: { pageInfo: { hasNextPage: boolean; endCursor: string | null } } } = await client.graphql(LAST_PAGE, {
      after,
      types: types ?? null,
    });
    const { hasNextPage, endCursor } = data.notifications.pageInfo;
    if (endCursor) after = endCursor;
    if (!hasNextPage || !endCursor) return after ?? "0";
  }
}

type Outcome = { kind: "aborted" } | { kind: "lost"; why: string; connected: boolean } | { kind: "fatal"; error: CliError };

/** One graphql-ws connection and subscription, until the signal aborts, the connection drops or the server refuses. */
async function subscribeOnce(
  wsUrl: string,
  token: string | undefined,
  variables: { after: string; types: string[] | null },
  onNotification: (n: WatchedNotification) => void,
  signal: AbortSignal,
): Promise<Outcome> {
  const { createClient } = await import("graphql-ws");
  const { default: WebSocket } = await import("ws");
  let closeCode: number | undefined;
  let closeReason = "";
  let connected = false;
  const ws = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    on: {
      connected: () => (connected = true),
      closed: (event) => {
        closeCode = (event as { code?: number }).code;
        closeReason = String((event as { reason?: string }).reason ?? "");
      },
    },
    onNonLazyError: () => undefined,
  });
  try {
    return await new Promise<Outcome>((resolve) => {
      const onAbort = () => {
        stop();
        resolve({ kind: "aborted" });
      };
      const stop = ws.subscribe<{ notifications: WatchedNotification }>(
        { query: WATCH, variables },
        {
          next: (result) => {
            if (result.errors?.length) resolve({ kind: "fatal", error: describeError(result.errors[0] as GraphQLErrorShape) });
            else if (result.data) onNotification(result.data.notifications);
          },
          error: (error: unknown) => {
            signal.removeEventListener("abort", onAbort);
            if (closeCode === 4401 || closeCode === 4403) resolve({ kind: "fatal", error: describeError({ message: "", extensions: { code: "UNAUTHENTICATED" } }) });
            else if (Array.isArray(error) && error[0]) resolve({ kind: "fatal", error: describeError(error[0] as GraphQLErrorShape) });
            else if (closeCode !== undefined && closeCode >= 4000 && closeCode < 5000)
              resolve({ kind: "fatal", error: new CliError(`KeyPortal closed the subscription (code ${closeCode}${closeReason ? `: ${closeReason.slice(0, 80)}` : ""})`) });
            else resolve({ kind: "lost", why: closeCode !== undefined ? `closed with code ${closeCode}` : "cannot connect", connected });
          },
          complete: () => {
            signal.removeEventListener("abort", onAbort);
            resolve({ kind: "lost", why: "the server ended the subscription", connected });
          },
        },
      );
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
  } finally {
    await ws.dispose();
  }
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });

/**
 * Follows Subscription.notifications over graphql-ws until `signal` aborts.
 * When the connection drops (a server restart, a network cut) it reconnects
 * with backoff and resumes after the last notification it delivered, so a
 * notification is neither skipped nor delivered twice. Gives up only when the
 * server refuses (token, bad arguments) or cannot be reached at all at the start.
 */
export async function watchNotifications(
  client: KeyPortalClient,
  token: string | undefined,
  opts: WatchOptions,
  onNotification: (n: WatchedNotification) => void,
  signal: AbortSignal,
): Promise<void> {
  let url: URL;
  try {
    url = new URL("/graphql", client.baseUrl);
  } catch {
    throw new CliError(`"${client.baseUrl}" is not a valid URL; pass --url http://host:port`, EXIT.USAGE);
  }
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const { initialMs, maxMs } = opts.backoff ?? { initialMs: 1000, maxMs: 30_000 };
  let cursor = opts.after ?? (await currentCursor(client, opts.types));
  let everConnected = false;
  let failures = 0;
  while (!signal.aborted) {
    const outcome = await subscribeOnce(
      url.toString(),
      token,
      { after: cursor, types: opts.types ?? null },
      (n) => {
        if (BigInt(n.id) <= BigInt(cursor)) return; // already delivered before a reconnect
        cursor = n.id;
        onNotification(n);
      },
      signal,
    );
    if (outcome.kind === "aborted") return;
    if (outcome.kind === "fatal") throw outcome.error;
    if (outcome.connected) {
      everConnected = true;
      failures = 0;
    }
    if (!everConnected) throw new CliError(`cannot reach KeyPortal at ${client.baseUrl}; check --url or KEYPORTAL_URL`, EXIT.UNREACHABLE);
    failures += 1;
    const delay = Math.round(Math.min(maxMs, initialMs * 2 ** (failures - 1)) * (0.5 + Math.random() / 2));
    opts.onStatus?.(`connection lost (${outcome.why}); reconnecting in ${(delay / 1000).toFixed(1)} s, resuming after notification ${cursor}`);
    await sleep(delay, signal);
  }
}
