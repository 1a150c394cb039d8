import type { TestServer } from "../support/server.js";

export interface ReceivedNotification {
  id: string;
  type: string;
}

export interface LiveSubscription {
  received: ReceivedNotification[];
  errors: unknown[];
  /** Resolves once a notification with this id has arrived; rejects after timeoutMs. */
  waitFor(id: string, timeoutMs?: number): Promise<void>;
  has(id: string): boolean;
  dispose(): void;
}

/** The highest notification id so far: subscribing after it receives exactly what happens next, however late the socket is ready. */
export async function lastNotificationId(server: TestServer): Promise<string> {
  const rows = (await server.app.db.dataSource.query(`SELECT MAX(id) AS id FROM notifications`)) as Array<{ id: number | string | null }>;
  return String(rows[0]?.id ?? 0);
}

/** `subscription { notifications(after) { id type } }` over a real graphql-ws socket. */
export function subscribeNotifications(server: TestServer, token: string, after: string): LiveSubscription {
  const client = server.wsClient(token);
  const received: ReceivedNotification[] = [];
  const errors: unknown[] = [];
  const waiters = new Set<() => void>();
  const dispose = client.subscribe<{ notifications: ReceivedNotification }>(
    { query: `subscription($after: String) { notifications(after: $after) { id type } }`, variables: { after } },
    {
      next: (value) => {
        if (value.data?.notifications) received.push(value.data.notifications);
        if (value.errors) errors.push(...value.errors);
        for (const w of waiters) w();
      },
      error: (error) => {
        errors.push(error);
        for (const w of waiters) w();
      },
      complete: () => undefined,
    },
  );
  const has = (id: string) => received.some((n) => n.id === id);
  return {
    received,
    errors,
    has,
    dispose,
    waitFor(id, timeoutMs = 10_000) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (has(id)) {
            done();
            resolve();
          } else if (errors.length > 0) {
            done();
            reject(new Error(`subscription failed: ${JSON.stringify(errors)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`notification ${id} did not arrive within ${timeoutMs} ms; received ${JSON.stringify(received)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** The id of the newest notification matching a column, read from the outbox table. */
export async function notificationIdWhere(server: TestServer, column: "csrId" | "officerId" | "delegationId" | "certificateId", value: string, type: string): Promise<string> {
  const placeholder = server.app.db.isPostgres ? "$1" : "?";
  const rows = (await server.app.db.dataSource.query(
    `SELECT MAX(id) AS id FROM notifications WHERE "${column}" = ${placeholder} AND type = '${type}'`,
    [value],
  )) as Array<{ id: number | string | null }>;
  if (rows[0]?.id == null) throw new Error(`no ${type} notification with ${column} ${value}`);
  return String(rows[0].id);
}
