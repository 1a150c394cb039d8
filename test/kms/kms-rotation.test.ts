/**
 * Rotation with overlap, retirement, who may do it, and the announcement,
 * over the API on SQLite and PostgreSQL.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Environment, KmsCertificatePurpose } from "../../src/kernel/domain.js";
import { KmsCertificate } from "../../src/kms/kms-certificate.entity.js";
import { EmailDelivery } from "../../src/notifications/email-delivery.entity.js";
import { Notification } from "../../src/notifications/notification.entity.js";
import { available } from "../support/deps.js";
import { approveKmsRotationAsSecondOperator } from "../support/dual-control.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { makeTempDir, openssl, opensslResult, writeFile } from "../pki/helpers.js";
import { KMS_FIELDS, LIST_KMS, listKms, RETIRE_KMS, ROTATE_KMS, type KmsCertificateView } from "./helpers.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`KMS certificate rotation on ${db}`, () => {
    let server: TestServer;
    let participant: TestOrganization;
    let msp: TestOrganization;
    const tmp = makeTempDir("kp-kms-rotation-");

    beforeAll(async () => {
      server = await startTestServer({ db });
      participant = await createOrganization(server, { country: "BE" });
      msp = await createOrganization(server, { kind: "MSP", country: "IE" });
    });

    afterAll(async () => {
      await server?.close();
      tmp.cleanup();
    });

    const officer = () => participant.officers[0]!.token;

    it("should answer UNAUTHENTICATED to an anonymous kmsCertificates and list for every authenticated viewer", async () => {
      const anonymous = await server.gql(LIST_KMS, { environment: "MTF" }, null);
      expect(anonymous.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect(anonymous.data).toBeNull();
      for (const token of [officer(), msp.officers[0]!.token, server.operatorToken]) {
        const all = await listKms(server, "MTF", null, token);
        expect(all.map((c) => c.purpose).sort()).toEqual(["MESSAGE_ENCRYPTION", "MESSAGE_SIGNING", "TLS_SERVER"]);
        expect(all.every((c) => c.current && c.environment === "MTF")).toBe(true);
      }
    });

    it("should refuse rotation and retirement to a participant officer with FORBIDDEN, and audit the attempts", async () => {
      const [signing] = await listKms(server, "PRODUCTION", "MESSAGE_SIGNING", officer());
      const rotate = await server.gql(ROTATE_KMS, { environment: "PRODUCTION", purpose: "MESSAGE_SIGNING" }, officer());
      expect(rotate.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      const retire = await server.gql(RETIRE_KMS, { id: signing!.id }, officer());
      expect(retire.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      const mspRotate = await server.gql(ROTATE_KMS, { environment: "MTF", purpose: "TLS_SERVER" }, msp.officers[0]!.token);
      expect(mspRotate.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      const anonymous = await server.gql(ROTATE_KMS, { environment: "MTF", purpose: "TLS_SERVER" }, null);
      expect(anonymous.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      // Nothing changed.
      expect(await listKms(server, "PRODUCTION", "MESSAGE_SIGNING", officer())).toEqual([signing]);
      const { auditLog } = await server.ok<{ auditLog: { nodes: Array<{ action: string; outcome: string }> } }>(`{ auditLog(first: 500) { nodes { action outcome } } }`);
      expect(auditLog.nodes).toContainEqual({ action: "kms.certificate.rotate", outcome: "FORBIDDEN" });
      expect(auditLog.nodes).toContainEqual({ action: "kms.certificate.retire", outcome: "FORBIDDEN" });
    });

    it("should keep the previous certificate listed and ACTIVE after a rotation, with the new one current and first", async () => {
      const [before] = await listKms(server, "MTF", "MESSAGE_SIGNING", officer());
      const { rotateKmsCertificate: rotated } = await server.ok<{ rotateKmsCertificate: KmsCertificateView }>(ROTATE_KMS, {
        environment: "MTF",
        purpose: "MESSAGE_SIGNING",
        validityDays: 90,
      });
      expect(rotated).toMatchObject({ current: true, status: "ACTIVE", environment: "MTF", purpose: "MESSAGE_SIGNING" });
      expect(rotated.keyId).not.toBe(before!.keyId);
      expect(rotated.serialNumber).not.toBe(before!.serialNumber);
      expect(new Date(rotated.notAfter).getTime() - new Date(rotated.notBefore).getTime()).toBe(90 * 86_400_000);

      const after = await listKms(server, "MTF", "MESSAGE_SIGNING", officer());
      expect(after.map((c) => [c.id, c.current, c.status])).toEqual([
        [rotated.id, true, "ACTIVE"],
        [before!.id, false, "ACTIVE"],
      ]);
      // The whole-environment list puts every current certificate before the overlapping one.
      const all = await listKms(server, "MTF", null, officer());
      expect(all.map((c) => c.current)).toEqual([true, true, true, false]);

      // Both chain to MTF; the download route now serves the new one.
      const { caChain } = await server.ok<{ caChain: string }>(`{ caChain(environment: MTF) }`);
      const chain = writeFile(tmp.path, "mtf-chain.pem", caChain);
      for (const certificate of after) expect(openssl(["verify", "-CAfile", chain, writeFile(tmp.path, `${certificate.id}.pem`, certificate.pem)])).toContain(": OK");
      expect(await (await fetch(`${server.url}/kms/MTF/message_signing.pem`)).text()).toBe(rotated.pem);

      // The KMS now signs with the new key.
      const signed = writeFile(tmp.path, "after-rotation.p7s", await server.app.services.kms.signMessage(Environment.MTF, Buffer.from("hi")));
      const signer = `${tmp.path}/signer.pem`;
      expect(opensslResult(["cms", "-verify", "-binary", "-inform", "DER", "-in", signed, "-CAfile", chain, "-signer", signer]).ok).toBe(true);
      expect(openssl(["x509", "-in", signer, "-noout", "-serial"]).trim().toLowerCase()).toBe(`serial=${rotated.serialNumber}`);

      const rows = await server.app.db.manager.find(KmsCertificate, { where: { environment: Environment.MTF, purpose: KmsCertificatePurpose.MESSAGE_SIGNING } });
      expect(rows.map((r) => r.keyLabel).sort()).toEqual(["kms-mtf-message_signing-1", "kms-mtf-message_signing-2"]);
    });

    it("should announce each rotation as KMS_CERTIFICATE_PUBLISHED to every participant and MSP, and audit it", async () => {
      await approveKmsRotationAsSecondOperator(server, "PRODUCTION", "TLS_SERVER");
      const { rotateKmsCertificate: rotated } = await server.ok<{ rotateKmsCertificate: KmsCertificateView }>(ROTATE_KMS, {
        environment: "PRODUCTION",
        purpose: "TLS_SERVER",
      });
      const notification = await server.app.db.manager.findOneOrFail(Notification, { where: { kmsCertificateId: rotated.id } });
      expect(notification).toMatchObject({
        type: "KMS_CERTIFICATE_PUBLISHED",
        organizationId: null,
        audience: "PARTICIPANTS_AND_MSPS",
        environment: "PRODUCTION",
      });
      expect(notification.message).toContain(rotated.serialNumber);
      expect(notification.message).toContain("/kms/PRODUCTION/tls_server.pem");
      // And mailed to every participant's and MSP's officers.
      const emails = await server.app.db.manager.find(EmailDelivery, { where: { notificationId: notification.id } });
      const recipients = emails.map((e) => e.recipient);
      for (const person of [...participant.officers, ...msp.officers]) expect(recipients).toContain(person.email);
      expect(emails.every((e) => /KMS certificate/.test(e.subject))).toBe(true);
      const { auditLog } = await server.ok<{ auditLog: { nodes: Array<{ action: string; outcome: string; targetId: string; details: string }> } }>(
        `{ auditLog(first: 500) { nodes { action outcome targetId details } } }`,
      );
      const event = auditLog.nodes.find((e) => e.action === "kms.certificate.rotate" && e.targetId === rotated.id);
      expect(event?.outcome).toBe("SUCCESS");
      expect(JSON.parse(event!.details)).toMatchObject({ environment: "PRODUCTION", purpose: "TLS_SERVER", serialNumber: rotated.serialNumber });
    });

    it("should deliver KMS_CERTIFICATE_PUBLISHED to a subscribed participant officer", async () => {
      const client = server.wsClient(officer());
      // Subscribe from the latest notification id: whatever is published after it is replayed, so the
      // rotation below cannot slip past a subscription that is still being set up.
      const rows = (await server.app.db.dataSource.query(`SELECT MAX(id) AS id FROM notifications`)) as Array<{ id: number | string | null }>;
      const after = String(rows[0]?.id ?? 0);
      type Received = { type: string; message: string; kmsCertificate: { id: string; pem: string; current: boolean } | null };
      const received = new Promise<Received>((resolve, reject) => {
        const dispose = client.subscribe<{ notifications: Received }>(
          {
            query: `subscription($after: String) { notifications(after: $after, types: [KMS_CERTIFICATE_PUBLISHED]) { type message kmsCertificate { id pem current } } }`,
            variables: { after },
          },
          {
            next: (value) => {
              if (value.data) {
                dispose();
                resolve(value.data.notifications);
              } else if (value.errors) reject(new Error(JSON.stringify(value.errors)));
            },
            error: reject,
            complete: () => undefined,
          },
        );
      });
      const { rotateKmsCertificate: rotated } = await server.ok<{ rotateKmsCertificate: KmsCertificateView }>(ROTATE_KMS, {
        environment: "MTF",
        purpose: "MESSAGE_ENCRYPTION",
      });
      const notification = await Promise.race([
        received,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("no KMS_CERTIFICATE_PUBLISHED within 10 s")), 10_000)),
      ]);
      expect(notification.type).toBe("KMS_CERTIFICATE_PUBLISHED");
      expect(notification.message).toContain(rotated.serialNumber);
      // The announcement carries the new certificate itself.
      expect(notification.kmsCertificate).toEqual({ id: rotated.id, pem: rotated.pem, current: true });
    });

    it("should decrypt for the overlapping encryption key until it is retired, and take it out of the valid set on retirement", async () => {
      const before = await listKms(server, "PRODUCTION", "MESSAGE_ENCRYPTION", officer());
      const old = before.find((c) => c.current)!;
      const recipient = writeFile(tmp.path, "old-enc.pem", old.pem);
      const plaintext = Buffer.from("to the old key\n");
      const input = writeFile(tmp.path, "old-plain.txt", plaintext);
      const encrypted = `${tmp.path}/to-old.der`;
      openssl(["cms", "-encrypt", "-aes256", "-binary", "-in", input, "-outform", "DER", "-out", encrypted, "-recip", recipient]);

      await approveKmsRotationAsSecondOperator(server, "PRODUCTION", "MESSAGE_ENCRYPTION");
      const { rotateKmsCertificate: rotated } = await server.ok<{ rotateKmsCertificate: KmsCertificateView }>(ROTATE_KMS, {
        environment: "PRODUCTION",
        purpose: "MESSAGE_ENCRYPTION",
      });
      const kms = server.app.services.kms;
      // Overlap: a participant that has not switched yet still gets through.
      expect(Buffer.from(await kms.decryptMessage(Environment.PRODUCTION, new Uint8Array(readFileSync(encrypted)))).equals(plaintext)).toBe(true);
      // And the new key works too.
      const toNew = `${tmp.path}/to-new.der`;
      openssl(["cms", "-encrypt", "-aes256", "-binary", "-in", input, "-outform", "DER", "-out", toNew, "-recip", writeFile(tmp.path, "new-enc.pem", rotated.pem)]);
      expect(Buffer.from(await kms.decryptMessage(Environment.PRODUCTION, new Uint8Array(readFileSync(toNew)))).equals(plaintext)).toBe(true);

      const current = await server.gql(RETIRE_KMS, { id: rotated.id }, server.operatorToken);
      expect(current.errors?.[0]?.extensions).toEqual({ code: "CONFLICT", reason: "KMS_CERTIFICATE_CURRENT" });

      const { retireKmsCertificate: retired } = await server.ok<{ retireKmsCertificate: KmsCertificateView }>(RETIRE_KMS, { id: old.id });
      expect(retired).toMatchObject({ id: old.id, current: false, status: "REVOKED" });
      const again = await server.gql(RETIRE_KMS, { id: old.id }, server.operatorToken);
      expect(again.errors?.[0]?.extensions).toEqual({ code: "CONFLICT", reason: "ALREADY_RETIRED" });
      const missing = await server.gql(RETIRE_KMS, { id: "00000000-0000-4000-8000-000000000000" }, server.operatorToken);
      expect(missing.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");

      const after = await listKms(server, "PRODUCTION", "MESSAGE_ENCRYPTION", officer());
      expect(after.map((c) => [c.id, c.current, c.status])).toEqual([
        [rotated.id, true, "ACTIVE"],
        [old.id, false, "REVOKED"],
      ]);
      expect(after.filter((c) => c.status === "ACTIVE").map((c) => c.id)).toEqual([rotated.id]);
      await expect(kms.decryptMessage(Environment.PRODUCTION, new Uint8Array(readFileSync(encrypted)))).rejects.toMatchObject({
        code: "BAD_USER_INPUT",
        reason: "CMS_RECIPIENT_NOT_FOUND",
      });
      expect(Buffer.from(await kms.decryptMessage(Environment.PRODUCTION, new Uint8Array(readFileSync(toNew)))).equals(plaintext)).toBe(true);

      // Relying parties that check the CRL see the retirement too (SUPERSEDED); the current certificate stays good.
      const crlDer = writeFile(tmp.path, "production.crl", new Uint8Array(await (await fetch(`${server.url}/crl/PRODUCTION.crl`)).arrayBuffer()));
      const crlPem = `${tmp.path}/production.crl.pem`;
      openssl(["crl", "-inform", "DER", "-in", crlDer, "-out", crlPem]);
      expect(openssl(["crl", "-in", crlPem, "-noout", "-text"])).toMatch(new RegExp(`Serial Number: ${old.serialNumber.toUpperCase()}\\s+Revocation Date: [^\\n]+\\n\\s+CRL entry extensions:\\s+X509v3 CRL Reason Code:\\s+Superseded`));
      const { caChain } = await server.ok<{ caChain: string }>(`{ caChain(environment: PRODUCTION) }`);
      const chain = writeFile(tmp.path, "production-chain.pem", caChain);
      const revoked = opensslResult(["verify", "-crl_check", "-CAfile", chain, "-CRLfile", crlPem, recipient]);
      expect(revoked.ok).toBe(false);
      expect(revoked.stdout + revoked.stderr).toContain("certificate revoked");
      expect(openssl(["verify", "-crl_check", "-CAfile", chain, "-CRLfile", crlPem, writeFile(tmp.path, "new-enc.pem", rotated.pem)])).toContain(": OK");
    });

    it("should refuse a validity outside 1..825 days with BAD_USER_INPUT and change nothing", async () => {
      const before = await listKms(server, "MTF", "TLS_SERVER", officer());
      for (const validityDays of [0, 826, -5]) {
        const result = await server.gql(ROTATE_KMS, { environment: "MTF", purpose: "TLS_SERVER", validityDays }, server.operatorToken);
        expect(result.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "INVALID_VALIDITY" });
      }
      expect(await listKms(server, "MTF", "TLS_SERVER", officer())).toEqual(before);
    });

    it("should keep exactly one current certificate when rotations race", async () => {
      const results = await Promise.all(
        Array.from({ length: 6 }, () => server.gql<{ rotateKmsCertificate: { id: string } }>(ROTATE_KMS, { environment: "MTF", purpose: "TLS_SERVER" }, server.operatorToken)),
      );
      const succeeded = results.filter((r) => r.data?.rotateKmsCertificate);
      const refused = results.filter((r) => r.errors?.[0]?.extensions?.code === "CONFLICT");
      expect(succeeded.length).toBeGreaterThanOrEqual(1);
      expect(succeeded.length + refused.length).toBe(6);
      const list = await listKms(server, "MTF", "TLS_SERVER", officer());
      expect(list.filter((c) => c.current)).toHaveLength(1);
      expect(list).toHaveLength(1 + succeeded.length);
      expect(new Set(list.map((c) => c.keyId)).size).toBe(list.length);
    });

    it("should refuse a second current certificate for an environment and purpose in the database itself", async () => {
      const [currentRow] = await server.app.db.manager.find(KmsCertificate, {
        where: { environment: Environment.MTF, purpose: KmsCertificatePurpose.MESSAGE_SIGNING, current: true },
      });
      const copy = { ...currentRow!, id: "11111111-1111-4111-8111-111111111111", serialNumber: "7f00", keyLabel: "kms-mtf-message_signing-99" };
      await expect(server.app.db.manager.insert(KmsCertificate, copy)).rejects.toThrow(/unique|UNIQUE/);
      await server.app.db.manager.insert(KmsCertificate, { ...copy, current: false });
      await server.app.db.manager.delete(KmsCertificate, { id: copy.id });
    });
  });
}

describe.skipIf(!hasOpenssl)("KMS certificates across restarts and concurrent starts", () => {
  it("should reuse the same certificates after a restart and create exactly one per slot when starts race", async () => {
    const first = await startTestServer();
    const fields = `{ kmsCertificates(environment: MTF) { ${KMS_FIELDS} } }`;
    const before = (await first.ok<{ kmsCertificates: KmsCertificateView[] }>(fields)).kmsCertificates;
    await first.close({ keepData: true });
    const second = await startTestServer({ dataDir: first.dataDir });
    try {
      // The operator bootstrapped by the first start; the second start's own token was never stored.
      const after = (await second.ok<{ kmsCertificates: KmsCertificateView[] }>(fields, {}, first.operatorToken)).kmsCertificates;
      expect(after).toEqual(before);
      expect(await second.app.db.manager.count(KmsCertificate)).toBe(6);

      // Two starters finding the slot empty at once: one publishes, the other discards its work.
      await second.app.db.manager.delete(KmsCertificate, { environment: Environment.PRODUCTION });
      const kms = second.app.services.kms;
      const [a, b] = await Promise.all([kms.ensureCurrentCertificates(), kms.ensureCurrentCertificates()]);
      expect(a.map((c) => c.id)).toEqual(b.map((c) => c.id));
      expect(await second.app.db.manager.count(KmsCertificate, { where: { environment: Environment.PRODUCTION } })).toBe(3);
    } finally {
      await second.close();
    }
  });

  it("should publish and announce the first certificates when organizations already exist (an upgrade)", async () => {
    const server = await startTestServer();
    try {
      await createOrganization(server, { officerCount: 0 });
      await server.app.db.manager.delete(KmsCertificate, { environment: Environment.MTF, purpose: KmsCertificatePurpose.TLS_SERVER });
      const all = await server.app.services.kms.ensureCurrentCertificates();
      const created = all.find((c) => c.environment === Environment.MTF && c.purpose === KmsCertificatePurpose.TLS_SERVER)!;
      const notification = await server.app.db.manager.findOneOrFail(Notification, { where: { kmsCertificateId: created.id } });
      expect(notification).toMatchObject({ type: "KMS_CERTIFICATE_PUBLISHED", audience: "PARTICIPANTS_AND_MSPS", organizationId: null });
      const rows = (await server.app.db.dataSource.query(`SELECT action, "targetId" FROM audit_events WHERE action = 'kms.certificate.publish'`)) as Array<{ targetId: string }>;
      expect(rows.map((r) => r.targetId)).toEqual([created.id]);
    } finally {
      await server.close();
    }
  });
});
