/**
 * The outbox's batch path: notifications composed before the transaction
 * (PrepareScope's compose: recipients, subjects and email text read for all
 * of them at once) and written inside it by notifyMany in multi-row INSERTs.
 * Their positions, their emails (the same as one notification at a time
 * writes), subscribers hearing every one, and a dedupeKey written once when
 * two batches race.
 */
import { In } from "typeorm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CertificateSigningRequest } from "../../src/csrs/csr.entity.js";
import { Certificate } from "../../src/certificates/certificate.entity.js";
import { isUniqueViolation } from "../../src/kernel/driver.js";
import { NotificationType } from "../../src/kernel/domain.js";
import type { ComposedNotification, NewNotification } from "../../src/kernel/ports.js";
import { EmailDelivery } from "../../src/notifications/email-delivery.entity.js";
import { Notification } from "../../src/notifications/notification.entity.js";
import { activeDelegation } from "../delegations/helpers.js";
import { issueMtf } from "../readpath/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { collect } from "./helpers.js";

const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("the outbox's batch path on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let server: TestServer;
    let participant: TestOrganization;
    let msp: TestOrganization;
    let other: TestOrganization;
    let certificate: Certificate;
    let csr: CertificateSigningRequest;
    let run = 0;

    beforeAll(async () => {
      server = await startTestServer({ db });
      participant = await createOrganization(server, { country: "DE" });
      msp = await createOrganization(server, { kind: "MSP", country: "DE" });
      other = await createOrganization(server, { country: "NL" });
      await activeDelegation(server, participant, msp, { kinds: ["MTLS_CLIENT"], environment: "MTF" });
      const id = await issueMtf(server, participant, "Batched Host", { validityDays: 40 });
      certificate = await server.app.db.manager.findOneByOrFail(Certificate, { id });
      csr = await server.app.db.manager.findOneByOrFail(CertificateSigningRequest, { id: certificate.csrId });
    }, 120_000);
    afterAll(async () => {
      await server?.close();
    });

    /**
     * Notifications whose recipients and subjects differ in every way the
     * emails know: a kind and environment an MSP is delegated (its officers
     * too) or not, a second organization, everyone, nobody; a certificate and
     * its CSR, twice.
     */
    function variety(tag: string): NewNotification[] {
      const expiring = (organizationId: string, kind: string, environment: string, n: number): NewNotification => ({
        type: NotificationType.CERTIFICATE_EXPIRING,
        organizationId,
        certificateKind: kind,
        environment,
        certificateId: certificate.id,
        csrId: csr.id,
        daysUntilExpiry: 60,
        dedupeKey: `${tag}:${n}`,
        message: `Batch ${tag} reminder ${n}.`,
      });
      return [
        expiring(participant.id, "MTLS_CLIENT", "MTF", 1),
        expiring(participant.id, "SIGNING", "MTF", 2),
        expiring(participant.id, "MTLS_CLIENT", "PRODUCTION", 3),
        expiring(other.id, "MTLS_CLIENT", "MTF", 4),
        { type: NotificationType.DELEGATION_APPROVED, organizationId: participant.id, secondOrganizationId: msp.id, message: `Batch ${tag} delegation.` },
        { type: NotificationType.KMS_CERTIFICATE_PUBLISHED, organizationId: null, audience: "PARTICIPANTS_AND_MSPS", message: `Batch ${tag} for everyone.` },
        { type: NotificationType.OFFICER_REGISTERED, organizationId: null, message: `Batch ${tag} for nobody.` },
        { type: NotificationType.CSR_SIGNED, organizationId: participant.id, certificateId: certificate.id, csrId: csr.id, message: `Batch ${tag} signed.` },
      ];
    }

    /** One mutation: composed before its transaction, written by notifyMany. */
    function batch(inputs: NewNotification[]) {
      return server.app.services.mutations.run(
        { action: "test.batch", targetType: "Notification", actor: null },
        ({ notifyMany }, composed: ComposedNotification[]) => notifyMany(composed),
        ({ compose }) => compose(inputs),
      );
    }

    /** One mutation writing the same one at a time through notify. */
    function oneByOne(inputs: NewNotification[]) {
      return server.app.services.mutations.run({ action: "test.one-by-one", targetType: "Notification", actor: null }, async ({ notify }) => {
        const saved = [];
        for (const input of inputs) saved.push(await notify(input));
        return saved;
      });
    }

    /** What was written to mail for the notification (not its sending state, which the delivery worker moves meanwhile). */
    async function deliveriesOf(notificationId: number): Promise<Array<Pick<EmailDelivery, "recipient" | "subject" | "body">>> {
      const rows = await server.app.db.manager.find(EmailDelivery, { where: { notificationId } });
      return rows.map(({ recipient, subject, body }) => ({ recipient, subject, body })).sort((a, b) => a.recipient.localeCompare(b.recipient));
    }

    it("should write the rows in the order given, each with its position, and let a subscriber hear every one in that order", async () => {
      run += 1;
      const inputs = variety(`order-${run}`);
      const before = Number((await server.app.db.manager.query(`SELECT COALESCE(MAX(position), 0) AS "max" FROM notifications`))[0].max);
      // From a cursor: what was committed before the socket was ready is replayed, so nothing is missed either way.
      const sub = collect(server.wsClient(server.operatorToken), { after: String(before) });
      const saved = await batch(inputs);

      expect(saved).toHaveLength(inputs.length);
      const rows = await server.app.db.manager.find(Notification, { where: { id: In(saved.map((s) => s.id)) }, order: { id: "ASC" } });
      // The ids are ascending in the order given, each row holding what was given at its place.
      expect(rows.map((r) => r.id)).toEqual(saved.map((s) => s.id));
      expect(rows.map((r) => r.message)).toEqual(inputs.map((n) => n.message));
      expect(rows.map((r) => r.dedupeKey)).toEqual(inputs.map((n) => n.dedupeKey ?? null));
      expect(rows.map((r) => r.occurredAt.toISOString())).toEqual(inputs.map(() => server.clock.now().toISOString()));
      // Positions: on SQLite the id (at insert, the trigger); on PostgreSQL from the sequencer before the mutation answered; above all earlier ones, in id order.
      const positions = rows.map((r) => r.position);
      expect(positions.every((p) => p > before)).toBe(true);
      expect([...positions].sort((a, b) => a - b)).toEqual(positions);
      if (db === "sqlite") {
        expect(positions).toEqual(rows.map((r) => r.id));
        expect(saved.map((s) => s.position)).toEqual(positions);
      }

      const last = positions[positions.length - 1]!;
      await sub.waitFor((n) => Number(n.id) === last, "the batch's last notification over the subscription");
      const heard = sub.items.filter((n) => Number(n.id) > before).map((n) => Number(n.id));
      expect(heard).toEqual(positions);
      sub.stop();
    });

    it("should mail each notification to the recipients, with the subject and body, that writing it alone gives", async () => {
      run += 1;
      const alone = await oneByOne(variety(`alone-${run}`));
      const batched = await batch(variety(`batched-${run}`));
      let mailed = 0;
      for (const [i, one] of alone.entries()) {
        const many = batched[i]!;
        const expected = (await deliveriesOf(one.id)).map((d) => ({
          ...d,
          // The body names the notification's own id and its message the batch it came from; nothing else differs.
          body: d.body.replace(`Notification ${one.id} of`, `Notification ${many.id} of`).replace(`Batch alone-${run}`, `Batch batched-${run}`),
        }));
        const written = await deliveriesOf(many.id);
        expect(written, `notification ${i}`).toEqual(expected);
        mailed += written.length;
      }
      // The delegated kind reaches the MSP's contact and officers; everyone reaches all three organizations; nobody, nobody.
      const [delegated, , , , , everyone, nobody] = await Promise.all(batched.map((s) => deliveriesOf(s.id)));
      expect(delegated!.map((d) => d.recipient)).toEqual(expect.arrayContaining([msp.officers[0]!.email, participant.officers[0]!.email]));
      expect(everyone!.map((d) => d.recipient)).toEqual(expect.arrayContaining([msp.officers[0]!.email, other.officers[0]!.email, participant.officers[0]!.email]));
      expect(nobody).toEqual([]);
      expect(mailed).toBeGreaterThan(20);
    });

    it("should write a dedupeKey once when two batches race for it, the loser leaving neither notification nor email", async () => {
      run += 1;
      const keys = (from: number, to: number) =>
        Array.from({ length: to - from }, (_, i): NewNotification => ({
          type: NotificationType.CERTIFICATE_EXPIRING,
          organizationId: participant.id,
          certificateKind: "MTLS_CLIENT",
          environment: "MTF",
          certificateId: certificate.id,
          csrId: csr.id,
          daysUntilExpiry: 30,
          dedupeKey: `race-${run}:${from + i}`,
          message: `Race ${run} reminder ${from + i}.`,
        }));
      const results = await Promise.allSettled([batch(keys(0, 10)), batch(keys(5, 15))]);
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(isUniqueViolation(lost[0]!.reason)).toBe(true);

      const rows = await server.app.db.manager
        .createQueryBuilder(Notification, "n")
        .where("n.dedupeKey LIKE :prefix", { prefix: `race-${run}:%` })
        .getMany();
      expect(rows).toHaveLength(10);
      const winner = results[0]!.status === "fulfilled" ? [0, 10] : [5, 15];
      expect(rows.map((r) => r.dedupeKey).sort()).toEqual(keys(winner[0]!, winner[1]!).map((n) => n.dedupeKey).sort());
      const mails = await server.app.db.manager
        .createQueryBuilder(EmailDelivery, "e")
        .where(`e.body LIKE :race`, { race: `Race ${run} reminder %` })
        .getMany();
      const perNotification = (await deliveriesOf(rows[0]!.id)).length;
      expect(perNotification).toBeGreaterThan(0);
      expect(mails).toHaveLength(10 * perNotification);
      expect(new Set(mails.map((m) => m.notificationId))).toEqual(new Set(rows.map((r) => r.id)));
    });
  });
});
