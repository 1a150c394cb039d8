import "reflect-metadata";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/kernel/clock.js";
import { EmailDelivery } from "../../src/notifications/email-delivery.entity.js";
import { freePort } from "../pki/helpers.js";
import { createOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { recordStatements } from "../support/statements.js";
import { type SmtpSink, startSmtpSink } from "./helpers.js";

/** What the SMTP sink received, less the enrollment emails (sent from memory, not from the delivery table). */
const notices = (sink: SmtpSink) => sink.messages.filter((m) => !m.subject.startsWith("[KeyPortal] Your enrollment code"));

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

    // Two registrations by the operator: contact + first officer, then contact + both officers. (The officers'
    // enrollment emails go straight to SMTP, with retries of their own; they are not counted here.)
    const operatorToken = server.operatorToken;
    const org = await createOrganization(server, { officerCount: 0 });
    for (const email of ["first@bank.example", "second@bank.example"]) {
      await server.ok(`mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`, {
        input: { organizationId: org.id, name: email, email },
      });
    }
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
    expect(notices(smtp)).toHaveLength(5);
    expect(new Set(notices(smtp).map((m) => `${m.to.join(",")}|${m.subject}`)).size).toBe(5);
    expect(notices(smtp).map((m) => m.messageId).sort()).toEqual(sent.map((d) => `<${d.id}@portal.example>`).sort());
    expect(await server.app.services.emailWorker.runOnce()).toEqual({ sent: 0, failed: 0 });

    // SMTP goes down again; a new email stays pending through a restart and is sent once SMTP is back.
    await server.close({ keepData: true });
    servers.pop();
    await smtp.close();
    // The first start created the operator: restarts keep its token.
    server = await startTestServer({ dataDir, clock, env, operatorToken });
    servers.push(server);
    await server.ok(
      `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
      { input: { organizationId: org.id, name: "Third Officer", email: "third@bank.example" } },
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
    expect(notices(smtpAgain)).toHaveLength(4);
    expect(notices(smtpAgain).every((m) => m.subject.includes("Third Officer"))).toBe(true);

    // Another restart resends nothing.
    await server.close({ keepData: true });
    servers.pop();
    server = await startTestServer({ dataDir, clock, env });
    servers.push(server);
    expect(await server.app.services.emailWorker.runOnce()).toEqual({ sent: 0, failed: 0 });
    expect(notices(smtp).length + notices(smtpAgain).length).toBe(9);
    expect((await deliveries(server)).every((d) => d.status === "SENT")).toBe(true);
  });

  it("should write .eml files under <data dir>/mail when no SMTP_URL is set", async () => {
    const server = await startTestServer();
    servers.push(server);
    const org = await createOrganization(server, { officerCount: 1 });
    // The OFFICER_ENROLLED emails may still be on their way when the enrollment answers.
    for (let i = 0; i < 100 && (await deliveries(server)).some((d) => d.status !== "SENT"); i++) await server.app.services.emailWorker.runOnce();
    const mailDir = path.join(server.dataDir, "mail");
    const files = readdirSync(mailDir).filter((f) => f.endsWith(".eml"));
    // Registered and enrolled, each to the contact and the officer; and the officer's enrollment email.
    expect(files).toHaveLength(5);
    const texts = files.map((f) => readFileSync(path.join(mailDir, f), "utf8"));
    expect(texts.filter((t) => /^Enrollment code: /m.test(t))).toHaveLength(1);
    const text = texts.join("\n");
    expect(text).toContain("Subject: [KeyPortal] Security officer registered:");
    expect(text).toContain("Subject: [KeyPortal] Security officer enrolled:");
    expect(text).toContain(org.officers[0]!.email);
    expect(text).toContain("What to do next:");
    expect(text).not.toContain(org.officers[0]!.token);
    expect((await deliveries(server)).every((d) => d.status === "SENT")).toBe(true);
  });

  it("should look for due mail on the reading connection, and take no turn in the write queue when nothing is due", async () => {
    const server = await startTestServer();
    servers.push(server);
    await createOrganization(server, { officerCount: 1 });
    for (let i = 0; i < 100 && (await deliveries(server)).some((d) => d.status !== "SENT"); i++) await server.app.services.emailWorker.runOnce();
    const statements = recordStatements(server, { writerOnly: true });
    const round = await server.app.services.emailWorker.runOnce();
    expect(round).toEqual({ sent: 0, failed: 0 });
    expect(statements.map((s) => s.sql)).toEqual([]);
  });
});
