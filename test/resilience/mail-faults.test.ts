import type { EntityManager } from "typeorm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Database } from "../../src/db/data-source.js";
import { eventually, type SmtpSink, sleep, startSmtpSink } from "../notifications/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { type FaultyCluster, officerInput, post, REGISTER_OFFICER, startFaultyCluster } from "./helpers.js";

const ready = await available("postgres", "redis");

describe.skipIf(!ready)("email delivery when the database goes away mid-send", () => {
  let cluster: FaultyCluster;
  let smtp: SmtpSink;
  let cutAt: number | null = null;

  beforeAll(async () => {
    smtp = await startSmtpSink(0, {
      beforeAccept: () => {
        // The first message of the test: the database goes away after the SMTP server has the message, before the sender can record SENT.
        if (cutAt !== null || !armed) return;
        cutAt = performance.now();
        cluster.a.pg.refuse();
        cluster.b.pg.refuse();
        setTimeout(() => {
          cluster.a.pg.heal();
          cluster.b.pg.heal();
        }, 1500).unref();
      },
    });
    cluster = await startFaultyCluster({ env: { SMTP_URL: `smtp://127.0.0.1:${smtp.port}` } });
  });
  afterAll(async () => {
    await cluster?.close();
    await smtp?.close();
  });
  let armed = false;

  async function deliveries(): Promise<Array<{ id: string; status: string }>> {
    return (await cluster.a.server.app.db.dataSource.query(`SELECT id, status FROM email_deliveries`)) as Array<{ id: string; status: string }>;
  }

  it("should send each email exactly once and record it SENT once the database returns, without waiting for the claim to lapse", async () => {
    const org = await createOrganization(cluster.a.server, { officerCount: 2 });
    await eventually(async () => ((await deliveries()).every((d) => d.status === "SENT") ? true : undefined), "the set-up mail to go out");
    armed = true;
    const before = smtp.messages.length;
    // A few mutations on both instances, each mailing the new officer and notifying the others.
    // (Retried while the database is away: a 503 is refused before anything was committed.)
    for (const server of [cluster.a.server, cluster.b.server, cluster.a.server]) {
      const input = officerInput(org.id);
      await eventually(async () => ((await post(server, REGISTER_OFFICER, input)).status === 200 ? true : undefined), "a mutation to commit");
    }
    await eventually(() => (cutAt !== null ? true : undefined), "a message to reach the SMTP server");
    // The standing clock never lets a claim lapse: SENT comes from the retried write-back alone.
    const rows = await eventually(
      async () => {
        const all = await deliveries().catch(() => []);
        return all.length > 0 && all.every((d) => d.status === "SENT") ? all : undefined;
      },
      "every delivery to be recorded SENT",
      15_000,
    );
    // Both instances' workers run again: nothing is resent.
    await Promise.all([cluster.a.server.app.services.emailWorker.runOnce(), cluster.b.server.app.services.emailWorker.runOnce()]);
    await sleep(200);
    // The enrollment emails are sent from memory, not from the delivery table.
    const messageIds = smtp.messages.filter((m) => !m.subject.startsWith("[KeyPortal] Your enrollment code")).map((m) => m.messageId);
    expect(smtp.messages.length).toBeGreaterThan(before);
    expect(messageIds).toHaveLength(rows.length);
    expect(new Set(messageIds).size).toBe(rows.length);
  }, 40_000);
});

describe("email delivery when a SENT write-back fails on SQLite", () => {
  let server: TestServer;
  let smtp: SmtpSink;
  let failWriteBacks = 0;
  let injected = false;

  beforeAll(async () => {
    smtp = await startSmtpSink(0, {
      beforeAccept: () => {
        if (!armed || injected) return;
        injected = true;
        // The next two isolated writes fail as if the disk or database were away: the first is the SENT write-back.
        failWriteBacks = 2;
        const isolated = Database.prototype.isolated;
        vi.spyOn(Database.prototype, "isolated").mockImplementation(function <T>(this: Database, work: (em: EntityManager) => Promise<T>) {
          if (failWriteBacks > 0) {
            failWriteBacks -= 1;
            return Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
          }
          return isolated.call(this, work) as Promise<T>;
        });
      },
    });
    server = await startTestServer({ env: { SMTP_URL: `smtp://127.0.0.1:${smtp.port}` } });
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await server?.close();
    await smtp?.close();
  });
  let armed = false;

  it("should retry the write-back without sending again", async () => {
    const org = await createOrganization(server, { officerCount: 2 });
    await server.app.services.emailWorker.runOnce();
    armed = true;
    expect((await post(server, REGISTER_OFFICER, officerInput(org.id))).status).toBe(200);
    const rows = await eventually(
      async () => {
        const all = (await server.app.db.dataSource.query(`SELECT id, status FROM email_deliveries`)) as Array<{ id: string; status: string }>;
        return failWriteBacks === 0 && all.every((d) => d.status === "SENT") ? all : undefined;
      },
      "every delivery to be recorded SENT",
    );
    await server.app.services.emailWorker.runOnce();
    // The enrollment emails are sent from memory, not from the delivery table.
    const messageIds = smtp.messages.filter((m) => !m.subject.startsWith("[KeyPortal] Your enrollment code")).map((m) => m.messageId);
    expect(messageIds).toHaveLength(rows.length);
    expect(new Set(messageIds).size).toBe(rows.length);
  }, 30_000);
});
