/** A small GraphQL-over-HTTP client with messages a person can act on. */

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
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
      throw new CliError(`"${this.baseUrl}" is not a valid URL; pass --url http://host:port`);
    }
    try {
      return await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).name;
      throw new CliError(`cannot reach KeyPortal at ${this.baseUrl} (${cause}); check --url or KEYPORTAL_URL`);
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
      throw new CliError(`${this.baseUrl} answered HTTP ${res.status} without GraphQL JSON; is this a KeyPortal server?`);
    }
    const error = body.errors?.[0];
    if (error) throw describeError(error);
    if (!body.data) throw new CliError("the server returned no data");
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
      return new CliError("the server refused the token: it is missing, unknown, expired or revoked; pass --token or set KEYPORTAL_TOKEN", 2);
    case "FORBIDDEN":
      return new CliError(`not allowed: ${error.message}`, 3);
    case "NOT_FOUND":
      return new CliError(`not found: ${error.message}`, 4);
    default:
      return new CliError(`${error.message}${code ? ` [${code}${reason && reason !== code ? `/${reason}` : ""}]` : ""}`);
  }
}

export interface WatchedNotification {
  id: string;
  type: string;
  occurredAt: string;
  message: string;
  daysUntilExpiry: number | null;
  certificate: { id: string; serialNumber: string } | null;
  certificateSigningRequest: { id: string } | null;
}

const WATCH = `subscription Watch($after: String, $types: [NotificationType!]) {
  notifications(after: $after, types: $types) {
    id type occurredAt message daysUntilExpiry
    certificate { id serialNumber }
    certificateSigningRequest { id }
  }
}`;

/**
 * Follows Subscription.notifications over graphql-ws until `signal` aborts
 * (resolves) or the server ends it (rejects with a CliError saying why).
 */
export async function watchNotifications(
  client: KeyPortalClient,
  token: string | undefined,
  opts: { after?: string; types?: string[] },
  onNotification: (n: WatchedNotification) => void,
  signal: AbortSignal,
): Promise<void> {
  const { createClient } = await import("graphql-ws");
  const { default: WebSocket } = await import("ws");
  let url: URL;
  try {
    url = new URL("/graphql", client.baseUrl);
  } catch {
    throw new CliError(`"${client.baseUrl}" is not a valid URL; pass --url http://host:port`);
  }
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  let closeCode: number | undefined;
  const ws = createClient({
    url: url.toString(),
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    on: { closed: (event) => (closeCode = (event as { code?: number }).code) },
    onNonLazyError: () => undefined,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const stop = ws.subscribe<{ notifications: WatchedNotification }>(
        { query: WATCH, variables: { after: opts.after ?? null, types: opts.types ?? null } },
        {
          next: (result) => {
            if (result.errors?.length) reject(describeError(result.errors[0] as GraphQLErrorShape));
            else if (result.data) onNotification(result.data.notifications);
          },
          error: (error: unknown) => {
            if (closeCode === 4401 || closeCode === 4403) reject(describeError({ message: "", extensions: { code: "UNAUTHENTICATED" } }));
            else if (Array.isArray(error) && error[0]) reject(describeError(error[0] as GraphQLErrorShape));
            else if (closeCode !== undefined) reject(new CliError(`KeyPortal closed the connection (code ${closeCode})`));
            else reject(new CliError(`cannot reach KeyPortal at ${client.baseUrl}; check --url or KEYPORTAL_URL`));
          },
          complete: () => resolve(),
        },
      );
      signal.addEventListener("abort", () => {
        stop();
        resolve();
      });
    });
  } finally {
    await ws.dispose();
  }
}
