/**
 * KeyPortal's GraphiQL page. Bundled by vite into static files (dist/web) so
 * it works with no internet access: the Monaco workers come from
 * `graphiql/setup-workers/vite`, not from a CDN.
 */
import "graphiql/setup-workers/vite";
import "graphiql/style.css";
import { createGraphiQLFetcher, type Fetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { type Client, CloseCode, createClient } from "graphql-ws";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

const httpUrl = `${location.origin}/graphql`;
const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/graphql`;

const DEFAULT_HEADERS = `{
  "Authorization": "Bearer <paste your token>"
}`;

const DEFAULT_QUERY = `# KeyPortal GraphiQL
#
# 1. Put your API token in the Headers tab:
#    "Authorization": "Bearer kp_..."
# 2. Run with Ctrl+Enter (Cmd+Enter on a Mac).
#
# Subscriptions use the same header, e.g.
#   subscription {
#     notifications { id type message }
#   }

query Me {
  me {
    role
    officer {
      name
      email
    }
    organization {
      name
      kind
    }
  }
}
`;

/** The Authorization value from the headers editor; header names are case-insensitive. */
function authorizationOf(headers: Record<string, unknown> | undefined): string | undefined {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.toLowerCase() === "authorization" && typeof value === "string") return value;
  }
  return undefined;
}

/**
 * Reconnect after a dropped socket (network, server restart), the library's
 * default, but not after 4403 Forbidden: the server refused this token (wrong,
 * revoked, officer deactivated) and will refuse it again, so the user should
 * see the refusal at once rather than after minutes of silent retries.
 */
function shouldRetry(errOrCloseEvent: unknown): boolean {
  return errOrCloseEvent instanceof CloseEvent && errOrCloseEvent.code !== CloseCode.Forbidden;
}

/*
 * graphql-ws authenticates once per connection (connectionParams), while the
 * user may change the Authorization header at any time. So there is one lazy
 * client per distinct Authorization value: a subscription always runs with the
 * header shown when it was started, and running one with a new token does not
 * cut off those already running with another. Lazy clients hold no socket while
 * they have no subscription, so keeping the idle ones costs next to nothing.
 */
const fetchers = new Map<string, Fetcher>();

function fetcherFor(authorization: string | undefined): Fetcher {
  const key = authorization ?? "";
  let fetcher = fetchers.get(key);
  if (!fetcher) {
    const wsClient: Client = createClient({
      url: wsUrl,
      lazy: true,
      connectionParams: authorization ? { authorization } : {},
      shouldRetry,
    });
    fetcher = createGraphiQLFetcher({ url: httpUrl, subscriptionUrl: wsUrl, wsClient });
    fetchers.set(key, fetcher);
  }
  return fetcher;
}

// HTTP requests carry the editor's headers through the toolkit; subscriptions get them via fetcherFor.
const fetcher: Fetcher = (params, opts) => fetcherFor(authorizationOf(opts?.headers))(params, opts);

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root element");

createRoot(root).render(
  <StrictMode>
    <GraphiQL
      fetcher={fetcher}
      defaultQuery={DEFAULT_QUERY}
      defaultHeaders={DEFAULT_HEADERS}
      isHeadersEditorEnabled
      defaultEditorToolsVisibility="headers"
    >
      <GraphiQL.Logo>KeyPortal GraphiQL</GraphiQL.Logo>
    </GraphiQL>
  </StrictMode>,
);
