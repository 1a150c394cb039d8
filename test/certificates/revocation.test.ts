import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/kernel/clock.js";
import { Environment } from "../../src/kernel/domain.js";
import { freePort, makeTempDir, openssl, opensslResult, sClient, spawnOpenssl, writeFile } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { serverCertificate } from "../support/openssl-server.js";
import { onPostgresIn, type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { CERTIFICATE, COMPROMISE, crlEntries, csrFor, expectError, fetchCrl, issue, outcome, RENEW, REVOKE, SUBMIT } from "./helpers.js";


const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");
const DAY = 86_400_000;

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`revocation and CRLs on ${db}`, () => {
    const onPostgres = onPostgresIn(db);
    let server: TestServer;
    let org: TestOrganization;
    let other: TestOrganization;
    const chains: Partial<Record<Environment, string>> = {};
    let tmp: ReturnType<typeof makeTempDir>;
    const children: ChildProcess[] = [];

    beforeAll(async () => {
      tmp = makeTempDir("kp-revocation-");
      // openssl checks validity against the real time: start the test clock at it.
      server = await startTestServer({ db, clock: new ManualClock(new Date(Math.floor(Date.now() / 1000) * 1000)) });
      org = await createOrganization(server, { country: "NL" });
      other = await createOrganization(server, { country: "FR" });
      for (const env of [Environment.MTF, Environment.PRODUCTION]) {
        const { caChain } = await server.ok<{ caChain: string }>(`query($e: Environment!) { caChain(environment: $e) }`, { e: env });
        chains[env] = writeFile(tmp.path, `${env}-chain.pem`, caChain);
      }
    });
    afterAll(async () => {
      try {
        for (const child of children) child.kill("SIGKILL");
        await server?.close();
      } finally {
        tmp?.cleanup();
      }
    });

    it("should publish a compromised certificate on its environment's CRL at once, with its reason, signed by the issuing CA", async () => {
      const before = await fetchCrl(server, tmp.path, "MTF.crl");
      const cert = await issue(server, tmp.path, org);
      const result = await server.ok<{ reportKeyCompromise: { status: string; revokedAt: string; revocationReason: string } }>(
        COMPROMISE,
        { id: cert.id, note: "laptop stolen" },
        org.officers[0]!.token,
      );
      expect(result.reportKeyCompromise).toEqual({ id: cert.id, status: "REVOKED", revokedAt: server.clock.now().toISOString(), revocationReason: "KEY_COMPROMISE" });

      const crl = await fetchCrl(server, tmp.path, "MTF.crl");
      expect(crl.contentType).toBe("application/pkix-crl");
      const verified = opensslResult(["crl", "-in", crl.pemFile, "-CAfile", chains.MTF!, "-noout"]);
      expect(verified.stdout + verified.stderr).toContain("verify OK");
      expect(crlEntries(crl.text).get(cert.serialNumber)).toBe("Key Compromise");
      expect(crl.crlNumber).toBeGreaterThan(before.crlNumber);
      expect(crl.text).toContain("X509v3 Authority Key Identifier");
      expect(crl.text).toMatch(/Issuer: C ?= ?US, O ?= ?KeyPortal, CN ?= ?KeyPortal MTF Issuing CA/);
      const thisUpdate = new Date(/Last Update: (.+)/.exec(crl.text)![1]!);
      const nextUpdate = new Date(/Next Update: (.+)/.exec(crl.text)![1]!);
      expect(thisUpdate.toISOString()).toBe(server.clock.now().toISOString());
      expect(nextUpdate.getTime() - thisUpdate.getTime()).toBe(7 * DAY);

      // The other environment's CRL does not list it, and is signed by its own CA.
      const production = await fetchCrl(server, tmp.path, "PRODUCTION.crl");
      expect(crlEntries(production.text).has(cert.serialNumber)).toBe(false);
      const otherChain = opensslResult(["crl", "-in", production.pemFile, "-CAfile", chains.MTF!, "-noout"]);
      expect(otherChain.stdout + otherChain.stderr).not.toContain("verify OK");
    });

    it("should serve the CRL at the distribution point written in the certificates, and under the lowercase name too", async () => {
      const cert = await issue(server, tmp.path, org);
      const text = openssl(["x509", "-in", cert.certFile, "-noout", "-text"]);
      const url = new URL(/X509v3 CRL Distribution Points:[\s\S]*?URI:(\S+)/.exec(text)![1]!);
      expect(url.pathname).toBe("/crl/MTF.crl");
      const atDistributionPoint = await fetchCrl(server, tmp.path, "MTF.crl");
      const lowercase = await fetchCrl(server, tmp.path, "mtf.crl");
      expect(lowercase.crlNumber).toBe(atDistributionPoint.crlNumber);
      expect((await fetch(`${server.url}/crl/UAT.crl`)).status).toBe(404);
      const cached = await fetch(`${server.url}/crl/MTF.crl`, { headers: { "if-none-match": atDistributionPoint.etag! } });
      expect(cached.status).toBe(304);
    });

    it("should increase the cRLNumber with every revocation and keep every revoked serial with its reason code", async () => {
      const reasons = ["SUPERSEDED", "CESSATION_OF_OPERATION", "AFFILIATION_CHANGED", "UNSPECIFIED"] as const;
      const expected = new Map<string, string>([
        ["SUPERSEDED", "Superseded"],
        ["CESSATION_OF_OPERATION", "Cessation Of Operation"],
        ["AFFILIATION_CHANGED", "Affiliation Changed"],
        // RFC 5280: "unspecified" is said by leaving the reasonCode extension out.
        ["UNSPECIFIED", ""],
      ]);
      let previous = (await fetchCrl(server, tmp.path, "PRODUCTION.crl")).crlNumber;
      const revoked: Array<{ serial: string; reason: string }> = [];
      for (const reason of reasons) {
        const cert = await issue(server, tmp.path, org, { environment: "PRODUCTION", kind: "SIGNING" });
        const result = await server.ok<{ revokeCertificate: { revocationReason: string } }>(REVOKE, { id: cert.id, reason }, org.officers[1]!.token);
        expect(result.revokeCertificate.revocationReason).toBe(reason);
        revoked.push({ serial: cert.serialNumber, reason });
        const crl = await fetchCrl(server, tmp.path, "PRODUCTION.crl");
        expect(crl.crlNumber).toBeGreaterThan(previous);
        previous = crl.crlNumber;
        const entries = crlEntries(crl.text);
        for (const r of revoked) expect(entries.get(r.serial)).toBe(expected.get(r.reason));
      }
      const verified = opensslResult(["crl", "-in", (await fetchCrl(server, tmp.path, "PRODUCTION.crl")).pemFile, "-CAfile", chains.PRODUCTION!, "-noout"]);
      expect(verified.stdout + verified.stderr).toContain("verify OK");
    });

    it("should refuse a second revocation with CONFLICT / ALREADY_REVOKED and keep the first revokedAt and reason", async () => {
      const cert = await issue(server, tmp.path, org);
      const first = await server.ok<{ revokeCertificate: { revokedAt: string } }>(REVOKE, { id: cert.id, reason: "SUPERSEDED" }, org.officers[0]!.token);
      server.clock.advanceMs(60_000);
      expectError(await server.gql(COMPROMISE, { id: cert.id }, org.officers[0]!.token), "CONFLICT", "ALREADY_REVOKED");
      expectError(await server.gql(REVOKE, { id: cert.id, reason: "UNSPECIFIED" }, server.operatorToken), "CONFLICT", "ALREADY_REVOKED");
      const { certificate } = await server.ok<{ certificate: { revokedAt: string; revocationReason: string } }>(CERTIFICATE, { id: cert.id }, org.officers[0]!.token);
      expect(certificate).toMatchObject({ revokedAt: first.revokeCertificate.revokedAt, revocationReason: "SUPERSEDED" });
    });

    it("should revoke exactly once when twenty revocations of one certificate race", async () => {
      const cert = await issue(server, tmp.path, org);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          server.gql(REVOKE, { id: cert.id, reason: i % 2 ? "SUPERSEDED" : "CESSATION_OF_OPERATION" }, org.officers[i % 2]!.token),
        ),
      );
      const outcomes = results.map(outcome);
      expect(outcomes.filter((o) => o === "OK")).toHaveLength(1);
      expect(outcomes.filter((o) => o === "CONFLICT/ALREADY_REVOKED")).toHaveLength(19);
      const notifications = await server.app.db.dataSource.query(`SELECT id FROM notifications WHERE type = 'CERTIFICATE_REVOKED' AND "certificateId" = $1`.replace("$1", db === "postgres" ? "$1" : "?"), [cert.id]);
      expect(notifications).toHaveLength(1);
    });

    it("should block a compromised key for every future request: KEY_REUSE for renewal and for another organization", async () => {
      const cert = await issue(server, tmp.path, org, { keyKind: "p256" });
      await server.ok(COMPROMISE, { id: cert.id }, org.officers[0]!.token);
      const blocked = await server.app.db.dataSource.query(`SELECT "certificateId" FROM blocked_keys`);
      expect(blocked.map((r: { certificateId: string }) => r.certificateId)).toContain(cert.id);

      const sameKeyForOther = openssl(["req", "-new", "-key", cert.key, "-subj", `/C=${other.country}/O=${other.name}/CN=Stolen`, "-sha256"]);
      expectError(
        await server.gql(SUBMIT, { input: { organizationId: other.id, kind: "SIGNING", environment: "PRODUCTION", pem: sameKeyForOther } }, other.officers[0]!.token),
        "BAD_USER_INPUT",
        "KEY_REUSE",
      );
      const sameKeyRenewal = openssl(["req", "-new", "-key", cert.key, "-subj", `/C=${org.country}/O=${org.name}/CN=Renewed`, "-sha256"]);
      expectError(await server.gql(RENEW, { input: { certificateId: cert.id, pem: sameKeyRenewal } }, org.officers[0]!.token), "BAD_USER_INPUT", "KEY_REUSE");
      // A fresh key renews the revoked certificate.
      const fresh = csrFor(tmp.path, org, "Renewed");
      const renewed = await server.ok<{ renewCertificate: { status: string; renewalOf: { id: string } } }>(RENEW, { input: { certificateId: cert.id, pem: fresh.pem } }, org.officers[0]!.token);
      expect(renewed.renewCertificate).toMatchObject({ status: "PENDING", renewalOf: { id: cert.id } });
    });

    it("should let operators revoke and hide the certificate from other organizations", async () => {
      const cert = await issue(server, tmp.path, org);
      expectError(await server.gql(REVOKE, { id: cert.id, reason: "KEY_COMPROMISE" }, other.officers[0]!.token), "NOT_FOUND", "NOT_FOUND");
      expectError(await server.gql(COMPROMISE, { id: cert.id }, other.officers[0]!.token), "NOT_FOUND", "NOT_FOUND");
      expectError(await server.gql(COMPROMISE, { id: cert.id }, null), "UNAUTHENTICATED", "UNAUTHENTICATED");
      expectError(await server.gql(COMPROMISE, { id: cert.id, note: "x".repeat(1001) }, org.officers[0]!.token), "BAD_USER_INPUT", "INVALID_NOTE");
      const byOperator = await server.ok<{ revokeCertificate: { status: string; revocationReason: string } }>(REVOKE, { id: cert.id, reason: "AFFILIATION_CHANGED" });
      expect(byOperator.revokeCertificate).toMatchObject({ status: "REVOKED", revocationReason: "AFFILIATION_CHANGED" });
    });

    it("should notify CERTIFICATE_REVOKED for the certificate's organization, kind and environment", async () => {
      const cert = await issue(server, tmp.path, org, { kind: "ENCRYPTION", environment: "PRODUCTION", keyKind: "rsa2048" });
      await server.ok(COMPROMISE, { id: cert.id }, org.officers[1]!.token);
      const rows = (await server.app.db.dataSource.query(
        `SELECT type, "organizationId", "certificateKind", environment, "certificateId", message FROM notifications WHERE "certificateId" = ${db === "postgres" ? "$1" : "?"} AND type = 'CERTIFICATE_REVOKED'`,
        [cert.id],
      )) as Array<Record<string, string>>;
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ organizationId: org.id, certificateKind: "ENCRYPTION", environment: "PRODUCTION", certificateId: cert.id });
      expect(rows[0]!.message).toContain(cert.serialNumber);
      expect(rows[0]!.message).toContain("KEY_COMPROMISE");
    });

    it("should audit every revocation attempt, the refused ones with their error code", async () => {
      const cert = await issue(server, tmp.path, org);
      await server.gql(REVOKE, { id: cert.id, reason: "KEY_COMPROMISE" }, other.officers[0]!.token);
      await server.ok(REVOKE, { id: cert.id, reason: "SUPERSEDED" }, org.officers[0]!.token);
      await server.gql(COMPROMISE, { id: cert.id }, org.officers[1]!.token);
      const rows = (await server.app.db.dataSource.query(
        `SELECT action, outcome, "actorId", details FROM audit_events WHERE "targetId" = ${db === "postgres" ? "$1" : "?"} AND action IN ('certificate.revoke', 'certificate.compromise') ORDER BY seq`,
        [cert.id],
      )) as Array<{ action: string; outcome: string; actorId: string; details: string }>;
      expect(rows.map((r) => [r.action, r.outcome, r.actorId])).toEqual([
        ["certificate.revoke", "NOT_FOUND", other.officers[0]!.id],
        ["certificate.revoke", "SUCCESS", org.officers[0]!.id],
        ["certificate.compromise", "CONFLICT", org.officers[1]!.id],
      ]);
      expect(JSON.parse(rows[1]!.details)).toMatchObject({ reason: "SUPERSEDED", serialNumber: cert.serialNumber, keyBlocked: false });
      expect(JSON.parse(rows[2]!.details)).toMatchObject({ reason: "ALREADY_REVOKED" });
    });

    it("should re-sign the CRL with a higher number once it is a day old and never serve one past its nextUpdate", async () => {
      const first = await fetchCrl(server, tmp.path, "MTF.crl");
      server.clock.advanceMs(6 * 3_600_000);
      expect((await fetchCrl(server, tmp.path, "MTF.crl")).crlNumber).toBe(first.crlNumber);
      server.clock.advanceMs(DAY);
      const refreshed = await fetchCrl(server, tmp.path, "MTF.crl");
      expect(refreshed.crlNumber).toBeGreaterThan(first.crlNumber);
      expect(new Date(/Last Update: (.+)/.exec(refreshed.text)![1]!).toISOString()).toBe(server.clock.now().toISOString());
      // Nobody asked for ten days: the first request re-signs before answering.
      server.clock.advanceDays(10);
      const late = await fetchCrl(server, tmp.path, "MTF.crl");
      expect(new Date(/Next Update: (.+)/.exec(late.text)![1]!).getTime()).toBeGreaterThan(server.clock.now().getTime());
      expect(late.crlNumber).toBeGreaterThan(refreshed.crlNumber);
      server.clock.set(new Date(Math.floor(Date.now() / 1000) * 1000));
      await fetchCrl(server, tmp.path, "MTF.crl");
    });

    it("should revoke an expired certificate and leave it off the CRL, which lists only unexpired certificates", async () => {
      const cert = await issue(server, tmp.path, org, { validityDays: 1 });
      const start = server.clock.now();
      server.clock.advanceDays(2);
      try {
        const { revokeCertificate } = await server.ok<{ revokeCertificate: { status: string } }>(REVOKE, { id: cert.id, reason: "CESSATION_OF_OPERATION" }, org.officers[0]!.token);
        expect(revokeCertificate.status).toBe("REVOKED");
        const crl = await fetchCrl(server, tmp.path, "MTF.crl");
        expect(crlEntries(crl.text).has(cert.serialNumber)).toBe(false);
      } finally {
        server.clock.set(start);
        await fetchCrl(server, tmp.path, "MTF.crl");
      }
    });

    onPostgres("should keep one increasing cRLNumber for two instances on one database when they revoke at once", async () => {
      // Same database and the same CA key files: a second instance behind the same load balancer.
      const second = await startTestServer({ databaseUrl: server.databaseUrl, dataDir: server.dataDir, clock: server.clock });
      try {
        const before = (await fetchCrl(server, tmp.path, "MTF.crl")).crlNumber;
        const certs: Awaited<ReturnType<typeof issue>>[] = [];
        for (let i = 0; i < 6; i++) certs.push(await issue(server, tmp.path, org));
        const results = await Promise.all(
          certs.map((c, i) => (i % 2 ? second : server).gql(REVOKE, { id: c.id, reason: "SUPERSEDED" }, org.officers[i % 2]!.token)),
        );
        expect(results.map(outcome)).toEqual(Array(6).fill("OK"));
        const fromFirst = await fetchCrl(server, tmp.path, "MTF.crl");
        const fromSecond = await fetchCrl(second, tmp.path, "MTF.crl");
        // One rebuild per revocation, each with its own number, whichever instance did it.
        expect(fromFirst.crlNumber).toBe(before + 6n);
        expect(fromSecond.crlNumber).toBe(fromFirst.crlNumber);
        for (const crl of [fromFirst, fromSecond]) {
          const entries = crlEntries(crl.text);
          for (const c of certs) expect(entries.get(c.serialNumber)).toBe("Superseded");
        }
      } finally {
        await second.close({ keepData: true });
      }
    });

    it("should make openssl s_server with -crl_check refuse the revoked client certificate and accept a valid one", async () => {
      const good = await issue(server, tmp.path, org);
      const revoked = await issue(server, tmp.path, org);
      await server.ok(COMPROMISE, { id: revoked.id }, org.officers[0]!.token);
      const crl = await fetchCrl(server, tmp.path, "MTF.crl");
      const tls = await serverCertificate(tmp.path, server.app.services.authorities.of(Environment.MTF), server.clock.now());

      async function handshake(client: { certFile: string; key: string }) {
        const port = await freePort();
        const proc = spawnOpenssl([
          "s_server", "-accept", `127.0.0.1:${port}`, "-cert", tls.cert, "-key", tls.key, "-CAfile", chains.MTF!,
          "-Verify", "1", "-verify_return_error", "-crl_check", "-CRL", crl.pemFile, "-naccept", "1",
        ]);
        children.push(proc.child);
        await proc.waitFor("ACCEPT");
        const result = await sClient(["-connect", `127.0.0.1:${port}`, "-cert", client.certFile, "-key", client.key, "-CAfile", chains.MTF!, "-verify_return_error"]);
        await new Promise<void>((resolve) => {
          if (proc.child.exitCode !== null) return resolve();
          const timer = setTimeout(() => {
            proc.child.kill("SIGKILL");
            resolve();
          }, 5000);
          proc.child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        return { client: result.output, server: proc.output() };
      }

      const refused = await handshake(revoked);
      expect(refused.server + refused.client).toMatch(/certificate revoked/);
      const accepted = await handshake(good);
      expect(accepted.client).toContain("Verify return code: 0 (ok)");
      expect(accepted.server).not.toMatch(/certificate revoked|verify error/i);
    });
  });
}
