/**
 * The upgrade to canonical key fingerprints, on rows as the previous version
 * left them: keys certified, blocked and pending under other encodings, with
 * the hash of the bytes as sent as their fingerprint.
 */
import "reflect-metadata";
import { createHash, randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import pg from "pg";
import { X509Certificate } from "@peculiar/x509";
import type { EntityManager } from "typeorm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlockedKey, Certificate } from "../../src/certificates/certificate.entity.js";
import { CertificateSigningRequest } from "../../src/csrs/csr.entity.js";
import { createDataSource } from "../../src/db/data-source.js";
import { CanonicalKeyFingerprints1764300001100 } from "../../src/db/migrations/1764300001100-canonical-key-fingerprints.js";
import { CsrStatus, Environment } from "../../src/kernel/domain.js";
import { certificateSpki, requestSpki } from "../../src/pki/key-identity.js";
import { newSerialHex } from "../../src/pki/issue.js";
import { DEFAULT_PROFILES } from "../../src/pki/profiles.js";
import { generateKey, makeCsr, makeTempDir, pemBody } from "../pki/helpers.js";
import { COMPROMISE, expectError } from "../certificates/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { PG_BASE_URL, type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { canonicalSpkiOf, reencodedCsr, type Reencoding } from "./reencode.js";
import { ENTITIES } from "../../src/features.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");

const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`;
const SIGN = `mutation($id: ID!) { signCsr(input: { csrId: $id }) { id } }`;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
async function removeTestData(server: TestServer): Promise<void> {
  rmSync(server.dataDir, { recursive: true, force: true });
  const schema = server.databaseUrl && new URL(server.databaseUrl).searchParams.get("schema");
  if (!schema) return;
  const client = new pg.Client({ connectionString: PG_BASE_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

const MIGRATION = new CanonicalKeyFingerprints1764300001100().name;
const spkiOfPem = (pem: string) => requestSpki(new Uint8Array(pemBody(pem)));

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`canonical fingerprint migration on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    const tmp = makeTempDir("kp-key-migration-");
    let counter = 0;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "LU" });
    });
    afterAll(async () => {
      // After a restart the server no longer owns its data: remove the directory and the schema here.
      await server?.close({ keepData: true });
      if (server) await removeTestData(server);
      tmp.cleanup();
    });

    /** Reads see committed data; writes go through the app's own transaction queue (on SQLite the read connection must not write). */
    const em = () => server.app.db.manager;
    const write = <T>(work: (m: EntityManager) => Promise<T>) => server.app.db.transaction(({ em: m }) => work(m));
    const subject = () => `/C=${org.country}/O=${org.name}/CN=Upgrade ${++counter}`;
    const submit = (pem: string) =>
      server.gql<{ submitCsr: { id: string } }>(SUBMIT, { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } }, org.officers[0]!.token);
    async function certify(key: string): Promise<{ csrId: string; certificateId: string }> {
      const submitted = await submit(makeCsr(key, subject()));
      const { signCsr } = await server.ok<{ signCsr: { id: string } }>(SIGN, { id: submitted.data!.submitCsr.id });
      return { csrId: submitted.data!.submitCsr.id, certificateId: signCsr.id };
    }
    const compromise = (certificateId: string) => server.ok(COMPROMISE, { id: certificateId, note: null }, org.officers[0]!.token);

    /** The certificate and its request as the previous version stored them for a CSR carrying `pem`'s key encoding. */
    async function asIssuedBefore(ids: { csrId: string; certificateId: string }, pem: string): Promise<string> {
      const spki = spkiOfPem(pem);
      const row = await em().findOneByOrFail(Certificate, { id: ids.certificateId });
      const der = await server.app.services.authorities.of(Environment.MTF).issue({
        profile: DEFAULT_PROFILES.MTLS_CLIENT,
        subjectDer: new Uint8Array(new X509Certificate(Buffer.from(row.derBase64, "base64")).subjectName.toArrayBuffer()),
        spki,
        serialHex: newSerialHex(),
        notBefore: row.notBefore,
        notAfter: row.notAfter,
      });
      await write((m) => m.update(Certificate, { id: ids.certificateId }, { derBase64: Buffer.from(der).toString("base64"), publicKeyFingerprint: sha256(spki) }));
      await write((m) => m.update(CertificateSigningRequest, { id: ids.csrId }, { pem, publicKeyFingerprint: sha256(spki) }));
      return sha256(spki);
    }
    /** A pending request for the key of `pem`, in that encoding, as the previous version accepted it beside another. */
    async function pendingBefore(like: string, pem: string, minutesLater: number): Promise<string> {
      const row = await em().findOneByOrFail(CertificateSigningRequest, { id: like });
      const id = randomUUID();
      await write((m) => m.insert(CertificateSigningRequest, {
        ...row,
        id,
        pem,
        publicKeyFingerprint: sha256(spkiOfPem(pem)),
        status: CsrStatus.PENDING,
        decidedAt: null,
        decidedById: null,
        certificateId: null,
        submittedAt: new Date(row.submittedAt.getTime() + minutesLater * 60_000),
      }));
      return id;
    }
    /** Restarts the server as an upgrade does: the migration runs at start, before anything else touches the database. */
    async function upgrade() {
      await write((m) => m.query(`DELETE FROM migrations WHERE "name" = '${MIGRATION}'`));
      await server.close({ keepData: true });
      server = await startTestServer({ db, dataDir: server.dataDir, databaseUrl: server.databaseUrl, operatorToken: server.operatorToken, clock: server.clock });
    }
    /** With the server stopped: undo the last migration (this one), then apply it again. */
    async function downAndUpAgain(check: { afterDown: (m: EntityManager) => Promise<void>; afterUp: (m: EntityManager) => Promise<void> }) {
      await server.close({ keepData: true });
      const dataSource = createDataSource({ databaseUrl: server.databaseUrl, dataDir: server.dataDir, entities: ENTITIES });
      await dataSource.initialize();
      const previous = server;
      try {
        await dataSource.undoLastMigration({ transaction: "each" });
        await check.afterDown(dataSource.manager);
        await dataSource.runMigrations({ transaction: "each" });
        await check.afterUp(dataSource.manager);
      } finally {
        await dataSource.destroy();
        server = await startTestServer({ db, dataDir: previous.dataDir, databaseUrl: previous.databaseUrl, operatorToken: previous.operatorToken, clock: previous.clock });
      }
    }
    const fingerprintOf = async (entity: typeof Certificate | typeof CertificateSigningRequest, id: string) =>
      (await em().findOneByOrFail(entity as typeof Certificate, { id })).publicKeyFingerprint;

    it("should give every stored key its canonical fingerprint, merge its blocks, keep one pending request per key and block what got in re-encoded", async () => {
      const reencoded = (key: string, how: Reencoding) => reencodedCsr(tmp.path, key, subject(), how);

      // A: certified from a compressed-point CSR (the certificate carries that point), then reported compromised.
      const keyA = generateKey(tmp.path, "p256");
      const a = await certify(keyA);
      const rawA = await asIssuedBefore(a, reencoded(keyA, "ec-compressed"));
      await compromise(a.certificateId);
      expect(await em().countBy(BlockedKey, { publicKeyFingerprint: rawA })).toBe(1);

      // B: certified twice under two encodings (usual, then hybrid), both compromised: two block entries for one key.
      const keyB = generateKey(tmp.path, "p256");
      const b1 = await certify(keyB);
      await compromise(b1.certificateId);
      const b2 = await certify(generateKey(tmp.path, "p256"));
      const rawB2 = await asIssuedBefore(b2, reencoded(keyB, "ec-hybrid"));
      server.clock.advanceMs(60_000);
      await compromise(b2.certificateId);
      expect(await em().countBy(BlockedKey, { publicKeyFingerprint: rawB2 })).toBe(1);

      // C: two pending requests for one RSA key, with and without the NULL parameters.
      const keyC = generateKey(tmp.path, "rsa2048");
      const c1 = (await submit(makeCsr(keyC, subject()))).data!.submitCsr.id;
      const c2 = await pendingBefore(c1, reencoded(keyC, "rsa-no-null"), 5);

      // D: certified, and a compressed-point request for the same key pending beside it.
      const keyD = generateKey(tmp.path, "p256");
      const d = await certify(keyD);
      const d2 = await pendingBefore(d.csrId, reencoded(keyD, "ec-compressed"), 5);

      await upgrade();

      const canonical = (key: string) => sha256(canonicalSpkiOf(key));
      expect(await fingerprintOf(Certificate, a.certificateId)).toBe(canonical(keyA));
      expect(await fingerprintOf(CertificateSigningRequest, a.csrId)).toBe(canonical(keyA));
      expect(sha256(certificateSpki(new Uint8Array(Buffer.from((await em().findOneByOrFail(Certificate, { id: a.certificateId })).derBase64, "base64"))))).toBe(rawA);
      expect(await em().findBy(BlockedKey, { publicKeyFingerprint: canonical(keyA) })).toHaveLength(1);
      expect(await em().countBy(BlockedKey, { publicKeyFingerprint: rawA })).toBe(0);

      expect(await fingerprintOf(Certificate, b2.certificateId)).toBe(canonical(keyB));
      expect(await em().findBy(BlockedKey, { publicKeyFingerprint: canonical(keyB) })).toMatchObject([{ certificateId: b1.certificateId }]);
      expect(await em().countBy(BlockedKey, { publicKeyFingerprint: rawB2 })).toBe(0);

      expect(await em().findOneByOrFail(CertificateSigningRequest, { id: c1 })).toMatchObject({ status: CsrStatus.PENDING, publicKeyFingerprint: canonical(keyC) });
      const rejected = await em().findOneByOrFail(CertificateSigningRequest, { id: c2 });
      expect(rejected).toMatchObject({ status: CsrStatus.REJECTED, publicKeyFingerprint: canonical(keyC) });
      expect(rejected.rejectionReason).toContain(`same public key as pending request ${c1}`);
      expect(await fingerprintOf(CertificateSigningRequest, d2)).toBe(canonical(keyD));

      // And the service now sees them for what they are.
      for (const key of [keyA, keyB]) {
        const result = await submit(makeCsr(key, subject()));
        expectError(result, "BAD_USER_INPUT", "KEY_REUSE");
        expect(result.errors![0]!.message).toMatch(/compromised/);
      }
      expectError(await submit(makeCsr(keyC, subject())), "BAD_USER_INPUT", "KEY_REUSE");
      expectError(await server.gql(SIGN, { id: d2 }, server.operatorToken), "BAD_USER_INPUT", "KEY_REUSE");

      // down() goes back to hashes of the stored bytes; up() again is where it was.
      await downAndUpAgain({
        afterDown: async (m) => {
          expect((await m.findOneByOrFail(Certificate, { id: a.certificateId })).publicKeyFingerprint).toBe(rawA);
          expect(await m.countBy(BlockedKey, { publicKeyFingerprint: rawA })).toBe(1);
        },
        afterUp: async (m) => {
          expect((await m.findOneByOrFail(Certificate, { id: a.certificateId })).publicKeyFingerprint).toBe(canonical(keyA));
          expect(await m.countBy(BlockedKey, { publicKeyFingerprint: canonical(keyA) })).toBe(1);
        },
      });
    });
  });
}
