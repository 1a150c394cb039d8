import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey, makeCsr, makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { approveAsSecondOperator } from "../support/dual-control.js";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { activeDelegation } from "../delegations/helpers.js";
import { collect, eventually, issueCertificate, latestId, type ReceivedEmail, type SmtpSink, startSmtpSink } from "./helpers.js";

const hasOpenssl = await available("openssl");

function addressesOf(org: TestOrganization & { contactEmail: string }, extra: string[] = []): string[] {
  return [org.contactEmail, ...org.officers.map((o) => o.email), ...extra].map((a) => a.toLowerCase()).sort();
}

const contactOf = (org: TestOrganization) => `pki@${org.name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}.example`;

describe("a notification reaches its organization's subscribers and mailboxes and no one else's", () => {
  let server: TestServer;
  let smtp: SmtpSink;
  let acme: TestOrganization & { contactEmail: string };
  let other: TestOrganization & { contactEmail: string };
  const tmp = makeTempDir("kp-notify-");

  beforeAll(async () => {
    smtp = await startSmtpSink();
    server = await startTestServer({ env: { SMTP_URL: `smtp://127.0.0.1:${smtp.port}`, MAIL_FROM: "KeyPortal <keyportal@portal.example>" } });
    const a = await createOrganization(server, { country: "GB" });
    const b = await createOrganization(server, { country: "FR" });
    acme = { ...a, contactEmail: contactOf(a) };
    other = { ...b, contactEmail: contactOf(b) };
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    tmp.cleanup();
  });

  /** Emails with this subject, once the worker has sent everything pending. */
  async function mailsWithSubject(subject: string): Promise<ReceivedEmail[]> {
    await server.app.services.emailWorker.runOnce();
    return smtp.messages.filter((m) => m.subject === subject);
  }

  it("should deliver OFFICER_REGISTERED to the organization's officers and operators, not to another organization", async () => {
    const after = await latestId(server);
    const ownSub = collect(server.wsClient(acme.officers[0]!.token), { after, types: ["OFFICER_REGISTERED"] });
    const otherSub = collect(server.wsClient(other.officers[0]!.token), { after, types: ["OFFICER_REGISTERED"] });
    const operatorSub = collect(server.wsClient(server.operatorToken), { after, types: ["OFFICER_REGISTERED"] });

    const newcomer = await addOfficer(server, acme.id, `newcomer-${Date.now()}@acme.example`);
    const seenByOwn = await ownSub.waitFor((n) => n.officer?.id === newcomer.id, "the officer's own organization to hear of it");
    expect(seenByOwn).toMatchObject({ type: "OFFICER_REGISTERED", organization: { id: acme.id }, officer: { id: newcomer.id } });
    await operatorSub.waitFor((n) => n.officer?.id === newcomer.id, "the operator to hear of it");

    // A barrier: the other organization hears of its own next event, so anything about Acme would have arrived before it.
    const barrier = await addOfficer(server, other.id, `barrier-${Date.now()}@other.example`);
    await otherSub.waitFor((n) => n.officer?.id === barrier.id, "the other organization's own event");
    expect(otherSub.items.every((n) => n.organization.id === other.id)).toBe(true);
    expect(ownSub.items.every((n) => n.organization.id === acme.id)).toBe(true);

    const mails = await mailsWithSubject(`[KeyPortal] Security officer registered: Officer ${newcomer.email}, ${acme.name}`);
    const recipients = mails.flatMap((m) => m.to).map((a) => a.toLowerCase()).sort();
    expect(recipients).toEqual(addressesOf(acme, [newcomer.email]));
    expect(recipients.some((r) => addressesOf(other).includes(r))).toBe(false);
    acme.officers.push(newcomer);
    ownSub.stop();
    otherSub.stop();
    operatorSub.stop();
  });

  it.skipIf(!hasOpenssl)("should deliver CSR_SIGNED with its certificate to the organization's subscribers and mailboxes only", async () => {
    const after = await latestId(server);
    const ownSubs = acme.officers.map((o) => collect(server.wsClient(o.token), { after, types: ["CSR_SIGNED"] }));
    const otherSub = collect(server.wsClient(other.officers[0]!.token), { after });

    const certificate = await issueCertificate(server, tmp.path, acme, { commonName: "Acme Payments Client", validityDays: 90 });
    for (const sub of ownSubs) {
      const signed = await sub.waitFor((n) => n.type === "CSR_SIGNED", "CSR_SIGNED at each officer of the organization");
      expect(signed).toMatchObject({ organization: { id: acme.id }, certificate: { id: certificate.id, commonName: "Acme Payments Client" } });
    }
    const barrier = await addOfficer(server, other.id, `barrier2-${Date.now()}@other.example`);
    await otherSub.waitFor((n) => n.officer?.id === barrier.id, "the other organization's own event");
    expect(otherSub.items.map((n) => n.type)).not.toContain("CSR_SIGNED");
    expect(otherSub.items.map((n) => n.type)).not.toContain("CSR_SUBMITTED");

    const mails = await mailsWithSubject("[KeyPortal] CSR signed: Acme Payments Client (MTF)");
    expect(mails.flatMap((m) => m.to).map((a) => a.toLowerCase()).sort()).toEqual(addressesOf(acme));
    const body = mails[0]!.raw;
    expect(body).toContain("was signed");
    expect(body).toContain("Download the certificate");
    // What happened and what to do, never a secret.
    for (const officer of [...acme.officers, ...other.officers]) expect(body).not.toContain(officer.token);
    expect(body).not.toContain(server.operatorToken);
    expect(body).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    for (const sub of [...ownSubs, otherSub]) sub.stop();
  });

  it.skipIf(!hasOpenssl)("should tell a delegated MSP of the participant's key material it covers, by subscription and email, and nothing else", async () => {
    const m = await createOrganization(server, { kind: "MSP", country: "NL" });
    const msp = { ...m, contactEmail: contactOf(m) };
    await activeDelegation(server, acme, msp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
    const mspSub = collect(server.wsClient(msp.officers[0]!.token), { after: await latestId(server), types: ["CSR_SIGNED"] });

    // Acme's PRODUCTION certificate is not delegated; its MTF client certificate is.
    const pem = makeCsr(generateKey(tmp.path, "p256"), `/C=${acme.country}/O=${acme.name}/CN=Acme Production Signer`);
    const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
      `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
      { input: { organizationId: acme.id, kind: "SIGNING", environment: "PRODUCTION", pem } },
      acme.officers[0]!.token,
    );
    await approveAsSecondOperator(server, submitCsr.id);
    await server.ok(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { id } }`, { id: submitCsr.id });
    const delegated = await issueCertificate(server, tmp.path, acme, { commonName: "Acme Delegated Client", validityDays: 90 });

    const heard = await mspSub.waitFor((n) => n.certificate?.id === delegated.id, "the MSP to hear of the delegated certificate");
    expect(heard.organization.id).toBe(acme.id);
    expect(mspSub.items.map((n) => n.certificate?.commonName)).toEqual(["Acme Delegated Client"]);

    const delegatedMails = await mailsWithSubject("[KeyPortal] CSR signed: Acme Delegated Client (MTF)");
    expect(delegatedMails.flatMap((x) => x.to).map((a) => a.toLowerCase()).sort()).toEqual([...addressesOf(acme), ...addressesOf(msp)].sort());
    const productionMails = await mailsWithSubject("[KeyPortal] CSR signed: Acme Production Signer (PRODUCTION)");
    expect(productionMails.flatMap((x) => x.to).map((a) => a.toLowerCase()).sort()).toEqual(addressesOf(acme));
    mspSub.stop();
  });

  it("should page the same history through Query.notifications, each organization its own", async () => {
    const page = await server.ok<{ notifications: { nodes: Array<{ id: string; organization: { id: string } }> } }>(
      `{ notifications(first: 500) { nodes { id organization { id } } } }`,
      {},
      other.officers[0]!.token,
    );
    expect(page.notifications.nodes.length).toBeGreaterThan(0);
    expect(page.notifications.nodes.every((n) => n.organization.id === other.id)).toBe(true);
    const ids = page.notifications.nodes.map((n) => Number(n.id));
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    const all = await server.ok<{ notifications: { nodes: Array<{ organization: { id: string } }> } }>(`{ notifications(first: 500) { nodes { organization { id } } } }`);
    const organizations = new Set(all.notifications.nodes.map((n) => n.organization.id));
    expect(organizations.has(acme.id) && organizations.has(other.id)).toBe(true);
  });

  it("should refuse the history and the subscription without a valid token", async () => {
    const anonymous = await server.gql(`{ notifications { nodes { id } } }`, {}, null);
    expect(anonymous.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    const badCursor = await server.gql(`{ notifications(after: "x") { nodes { id } } }`, {}, acme.officers[0]!.token);
    expect(badCursor.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_CURSOR" });
    const badSubscription = collect(server.wsClient(acme.officers[0]!.token), { after: "not-a-cursor" });
    await badSubscription.waitForEnd();
    expect(badSubscription.errors).toMatchObject([{ extensions: { code: "BAD_USER_INPUT", reason: "INVALID_CURSOR" } }]);
    let closeCode = 0;
    const client = server.wsClient("kp_not_a_real_token", { onClose: (code) => (closeCode = code) });
    collect(client);
    await eventually(() => (closeCode ? closeCode : undefined), "the socket to close");
    expect(closeCode).toBe(4403);
  });
});
