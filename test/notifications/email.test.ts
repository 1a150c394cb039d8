import "reflect-metadata";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/clock.js";
import { EmailDelivery } from "../../src/notifications/email-delivery.entity.js";
import { freePort } from "../pki/helpers.js";
import { createOrganization } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { type SmtpSink, startSmtpSink } from "./helpers.js";

async function deliveries(server: TestServer): Promise<EmailDelivery[]> {
  return server.app.db.manager.find(EmailDelivery, { order: { createdAt: "ASC", id: "ASC" } });
}

describe("email delivery", () => {
  const dirs: string[] = [];
  const servers: TestServer[] = [];
  const sinks: SmtpSink[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close({ keepData: true }).catch(() => undefined);
    for (const sink of sinks) await sink.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it("should deliver every email exactly once when SMTP is down and then up, across restarts", async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "kp-mail-"));
    dirs.push(dataDir);
    const port = await freePort(); // nothing listens there yet
    const clock = new ManualClock("2027-03-01T09:00:00.000Z");
    const env = { SMTP_URL: `smtp://127.0.0.1:${port}`, MAIL_FROM: "KeyPortal <keyportal@portal.example>" };
    let server = await startTestServer({ dataDir, clock, env });
    servers.push(server);

    const org = await createOrganization(server, { officerCount: 2 });
    // Two registrations: contact + first officer, then contact + both officers.
    const first = await server.app.services.emailWorker.runOnce();
    const afterFirstFailure = await deliveries(server);
    expect(afterFirstFailure).toHaveLength(5);
    expect(first.sent).toBe(0);
    for (const d of afterFirstFailure) {
      expect(d.status).toBe("PENDING");
      expect(d.attempts).toBeGreaterThanOrEqual(1);
      expect(d.lastError).toMatch(/ECONNREFUSED|ECONNECTION|ESOCKET/);
      expect(d.nextAttemptAt.getTime()).toBeGreaterThan(clock.now().getTime());
    }
    // Nothing is due until the clock reaches the backoff.
    expect(await server.app.services.emailWorker.runOnce()).toEqual({ sent: 0, failed: 0 });
    clock.advanceMs(1_300);
    await server.app.services.emailWorker.runOnce();
    const afterSecondFailure = await deliveries(server);
    expect(afterSecondFailure.every((d) => d.attempts >= 2 && d.status === "PENDING")).toBe(true);
    // Exponential: the second delay is about twice the first (1 s and 2 s, each ±25%).
    for (const d of afterSecondFailure) {
      const delay = d.nextAttemptAt.getTime() - clock.now().getTime();
      expect(delay).toBeGreaterThanOrEqual(1_500);
      expect(delay).toBeLessThanOrEqual(2_500);
    }

    // SMTP comes up: the next round after the backoff sends each email once.
    const smtp = await startSmtpSink(port);
    sinks.push(smtp);
    clock.advanceMs(3_000);
    expect(await server.app.services.emailWorker.runOnce()).toEqual({ sent: 5, failed: 0 });
    const sent = await deliveries(server);
    expect(sent.map((d) => d.status)).toEqual(Array(5).fill("SENT"));
    expect(sent.every((d) => d.sentAt !== null && d.lastError === null && d.messageId === `<${d.id}@portal.example>`)).toBe(true);
    expect(smtp.messages).toHaveLength(5);
    expect(new Set(smtp.messages.map((m) => `${m.to.join(",")}|${m.subject}`)).size).toBe(5);
    expect(smtp.messages.map((m) => m.messageId).sort()).toEqual(sent.map((d) => `<${d.id}@portal.example>`).sort());
    expect(await server.app.services.emailWorker.runOnce()).toEqual({ sent: 0, failed: 0 });

    // SMTP goes down again; a new email stays pending through a restart and is sent once SMTP is back.
    await server.close({ keepData: true });
    servers.pop();
    await smtp.close();
    server = await startTestServer({ dataDir, clock, env });
    servers.push(server);
    // (The restarted server's own bootstrap token is not valid: the first start created the operator.)
    await server.ok(
      `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
      { input: { organizationId: org.id, name: "Third Officer", email: "third@bank.example" } },
      org.officers[0]!.token,
    );
    await server.app.services.emailWorker.runOnce(); // after the round the commit kicked, if any
    const pending = (await deliveries(server)).filter((d) => d.status === "PENDING");
    expect(pending).toHaveLength(4);
    expect(pending.every((d) => d.attempts >= 1 && d.lastError !== null)).toBe(true);
    await server.close({ keepData: true });
    servers.pop();
    const smtpAgain = await startSmtpSink(port);
    sinks.push(smtpAgain);
    clock.advanceMs(3_000);
    server = await startTestServer({ dataDir, clock, env });
    servers.push(server);
    await server.app.services.emailWorker.runOnce();
    expect(smtpAgain.messages).toHaveLength(4);
    expect(smtpAgain.messages.every((m) => m.subject.includes("Third Officer"))).toBe(true);

    // Another restart resends nothing.
    await server.close({ keepData: true });
    servers.pop();
    server = await startTestServer({ dataDir, clock, env });
    servers.push(server);
    expect(await server.app.services.emailWorker.runOnce()).toEqual({ sent: 0, failed: 0 });
    expect(smtp.messages.length + smtpAgain.messages.length).toBe(9);
    expect((await deliveries(server)).every((d) => d.status === "SENT")).toBe(true);
  });

  it("should write .eml files under <data dir>/mail when no SMTP_URL is set", async () => {
    const server = await startTestServer();
    servers.push(server);
    const org = await createOrganization(server, { officerCount: 1 });
    await server.app.services.emailWorker.runOnce();
    const mailDir = path.join(server.dataDir, "mail");
    const files = readdirSync(mailDir).filter((f) => f.endsWith(".eml"));
    expect(files).toHaveLength(2); // the contact and the officer
    const text = files.map((f) => readFileSync(path.join(mailDir, f), "utf8")).join("\n");
    expect(text).toContain("Subject: [KeyPortal] Security officer registered:");
    expect(text).toContain(org.officers[0]!.email);
    expect(text).toContain("What to do next:");
    expect(text).not.toContain(org.officers[0]!.token);
    expect((await deliveries(server)).every((d) => d.status === "SENT")).toBe(true);
  });
});
