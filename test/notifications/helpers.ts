/**
 * Helpers for the notification suites: a subscription collector over a real
 * graphql-ws client, a real SMTP listener (smtp-server), certificates issued
 * through the API, and bounded waits.
 */
import "reflect-metadata";
import { SMTPServer } from "smtp-server";
import type { Client } from "graphql-ws";
import { NotificationStore } from "../../src/notifications/notification.store.js";
import { generateKey, makeCsr } from "../pki/helpers.js";
import type { TestOrganization } from "../support/organizations.js";
import type { TestServer } from "../support/server.js";

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns something other than undefined; fails after timeoutMs. */
export async function eventually<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export interface ReceivedNotification {
  id: string;
  type: string;
  message: string;
  daysUntilExpiry: number | null;
  organization: { id: string };
  certificate: { id: string; commonName: string } | null;
  officer: { id: string } | null;
}

export const NOTIFICATION_FIELDS = "id type message daysUntilExpiry organization { id } certificate { id commonName } officer { id }";

export interface Collector {
  items: ReceivedNotification[];
  errors: unknown[];
  completed: boolean;
  /** Waits until a received notification satisfies `match`. */
  waitFor(match: (n: ReceivedNotification) => boolean, what: string, timeoutMs?: number): Promise<ReceivedNotification>;
  /** Waits until the server ends the subscription (complete or error). */
  waitForEnd(timeoutMs?: number): Promise<void>;
  stop(): void;
}

/** Subscribes to Subscription.notifications on the client and collects what arrives. */
export function collect(client: Client, args: { after?: string | null; types?: string[] } = {}): Collector {
  const collector: Collector = {
    items: [],
    errors: [],
    completed: false,
    waitFor: (match, what, timeoutMs) => eventually(() => collector.items.find(match), what, timeoutMs),
    waitForEnd: async (timeoutMs) => {
      await eventually(() => (collector.completed ? true : undefined), "the subscription to end", timeoutMs);
    },
    stop: () => unsubscribe(),
  };
  const unsubscribe = client.subscribe<{ notifications: ReceivedNotification }>(
    {
      query: `subscription($after: String, $types: [NotificationType!]) { notifications(after: $after, types: $types) { ${NOTIFICATION_FIELDS} } }`,
      variables: { after: args.after ?? null, types: args.types ?? null },
    },
    {
      next: (result) => {
        if (result.errors) collector.errors.push(...result.errors);
        if (result.data?.notifications) collector.items.push(result.data.notifications);
      },
      error: (error) => {
        collector.errors.push(error);
        collector.completed = true;
      },
      complete: () => {
        collector.completed = true;
      },
    },
  );
  return collector;
}

/**
 * The newest notification id: a subscription with `after` set to it receives
 * exactly what happens next, however late its socket is ready.
 */
export async function latestId(server: TestServer): Promise<string> {
  return String(await new NotificationStore(server.app.db).maxId());
}

export interface ReceivedEmail {
  to: string[];
  subject: string;
  messageId: string;
  raw: string;
}

export interface SmtpSink {
  port: number;
  messages: ReceivedEmail[];
  close(): Promise<void>;
}

function header(raw: string, name: string): string {
  const head = raw.split(/\r?\n\r?\n/, 1)[0]!.replace(/\r?\n[ \t]+/g, " ");
  const line = head.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line ? line.slice(name.length + 1).trim() : "";
}

/** A real SMTP server on 127.0.0.1 (port 0: any free port) that keeps every message. */
export async function startSmtpSink(port = 0, opts: { beforeAccept?: (email: ReceivedEmail) => Promise<void> | void } = {}): Promise<SmtpSink> {
  const messages: ReceivedEmail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    disableReverseLookup: true,
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const email = {
          to: session.envelope.rcptTo.map((r) => r.address),
          subject: header(raw, "Subject"),
          messageId: header(raw, "Message-ID"),
          raw,
        };
        messages.push(email);
        // A fault injected between receiving a message and accepting it (the sender sees the accept after it).
        void Promise.resolve(opts.beforeAccept?.(email)).then(() => callback());
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const address = server.server.address();
  return {
    port: typeof address === "object" && address ? address.port : port,
    messages,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`;
export const SIGN = `mutation($id: ID!, $days: Int) { signCsr(input: { csrId: $id, validityDays: $days }) { id notAfter commonName } }`;
export const RENEW = `mutation($input: RenewCertificateInput!) { renewCertificate(input: $input) { id } }`;

let counter = 0;

/** A certificate through the real flow: an officer submits a CSR made by openssl, the operator signs it. */
export async function issueCertificate(
  server: TestServer,
  dir: string,
  org: TestOrganization,
  opts: { validityDays?: number; commonName?: string; renewalOf?: string } = {},
): Promise<{ id: string; notAfter: string; commonName: string }> {
  counter += 1;
  const commonName = opts.commonName ?? `Notified Client ${counter}`;
  const pem = makeCsr(generateKey(dir, "p256"), `/C=${org.country}/O=${org.name}/CN=${commonName}`);
  const token = org.officers[0]!.token;
  const csrId = opts.renewalOf
    ? (await server.ok<{ renewCertificate: { id: string } }>(RENEW, { input: { certificateId: opts.renewalOf, pem } }, token)).renewCertificate.id
    : (await server.ok<{ submitCsr: { id: string } }>(SUBMIT, { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } }, token))
        .submitCsr.id;
  const { signCsr } = await server.ok<{ signCsr: { id: string; notAfter: string; commonName: string } }>(SIGN, {
    id: csrId,
    days: opts.validityDays ?? null,
  });
  return signCsr;
}

/** Every notification the viewer may see after the cursor, through Query.notifications, page by page. */
export async function history(server: TestServer, token: string, after: string | null, types?: string[]): Promise<ReceivedNotification[]> {
  const all: ReceivedNotification[] = [];
  let cursor = after;
  for (;;) {
    const { notifications } = await server.ok<{
      notifications: { nodes: ReceivedNotification[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
    }>(
      `query($after: String, $types: [NotificationType!]) { notifications(after: $after, first: 50, types: $types) { nodes { ${NOTIFICATION_FIELDS} } pageInfo { hasNextPage endCursor } } }`,
      { after: cursor, types: types ?? null },
      token,
    );
    all.push(...notifications.nodes);
    if (!notifications.pageInfo.hasNextPage) return all;
    cursor = notifications.pageInfo.endCursor;
  }
}
