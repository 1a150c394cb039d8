/**
 * A key is the key, not its bytes: every re-encoding of a certified or
 * compromised key is KEY_REUSE (or, where the encoding is not DER, refused
 * outright), and a certificate carries the key's canonical SPKI.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { certificateSpki } from "../../src/pki/key-identity.js";
import { generateKey, makeCsr, makeTempDir, pemBody } from "../pki/helpers.js";
import { COMPROMISE, expectError, outcome } from "../certificates/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { canonicalSpkiOf, csrSpki, csrWithSpki, keyKindOf, reencodedCsr, type Reencoding } from "./reencode.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");

const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id publicKeyFingerprint } }`;
const SIGN = `mutation($id: ID!) { signCsr(input: { csrId: $id }) { id pem } }`;

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** What each re-encoding of a key gets: the same identity (canonicalized) or refusal as not DER. */
const REENCODINGS: Array<{ reencoding: Reencoding; canonicalized: true } | { reencoding: Reencoding; canonicalized: false; message: RegExp }> = [
  { reencoding: "ec-compressed", canonicalized: true },
  { reencoding: "ec-hybrid", canonicalized: true },
  { reencoding: "rsa-no-null", canonicalized: true },
  { reencoding: "rsa-modulus-extra-00", canonicalized: false, message: /RSA modulus INTEGER has a superfluous leading 00 octet/ },
  { reencoding: "rsa-modulus-no-sign-octet", canonicalized: false, message: /RSA modulus is a negative INTEGER/ },
];

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`key identity on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    const tmp = makeTempDir("kp-key-identity-");
    let counter = 0;

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "NL" });
    });
    afterAll(async () => {
      await server?.close();
      tmp.cleanup();
    });

    const subject = () => `/C=${org.country}/O=${org.name}/CN=Key Identity ${++counter}`;
    const submit = (pem: string) =>
      server.gql<{ submitCsr: { id: string; publicKeyFingerprint: string } }>(
        SUBMIT,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } },
        org.officers[0]!.token,
      );
    async function certify(pem: string): Promise<{ id: string; pem: string; fingerprint: string }> {
      const submitted = await submit(pem);
      expect(outcome(submitted)).toBe("OK");
      const { signCsr } = await server.ok<{ signCsr: { id: string; pem: string } }>(SIGN, { id: submitted.data!.submitCsr.id });
      return { ...signCsr, fingerprint: submitted.data!.submitCsr.publicKeyFingerprint };
    }
    /** The expected answer for a CSR carrying `reencoding` of a key that is certified or blocked. */
    function expectRefused(result: Awaited<ReturnType<typeof submit>>, entry: (typeof REENCODINGS)[number]) {
      if (entry.canonicalized) return expectError(result, "BAD_USER_INPUT", "KEY_REUSE");
      expectError(result, "BAD_USER_INPUT", "INVALID_CSR");
      expect(result.errors![0]!.message).toMatch(entry.message);
    }

    it("should refuse an EC point that is not on its curve, saying so", async () => {
      const key = generateKey(tmp.path, "p256");
      const spki = new Uint8Array(canonicalSpkiOf(key));
      spki[spki.length - 1]! ^= 1;
      const result = await submit(csrWithSpki(key, subject(), spki));
      expectError(result, "BAD_USER_INPUT", "INVALID_CSR");
      expect(result.errors![0]!.message).toBe("The CSR's public key is refused: the EC point is not on its curve.");
    });

    for (const entry of REENCODINGS) {
      const { reencoding } = entry;

      it(`should refuse a CSR with the ${reencoding} form of a key reported compromised`, async () => {
        const key = generateKey(tmp.path, keyKindOf(reencoding));
        const first = await certify(makeCsr(key, subject()));
        await server.ok(COMPROMISE, { id: first.id, note: null }, org.officers[0]!.token);
        const pem = reencodedCsr(tmp.path, key, subject(), reencoding);
        expect(Buffer.from(csrSpki(pem)).equals(canonicalSpkiOf(key)), "the CSR carries another encoding of the key").toBe(false);
        const result = await submit(pem);
        expectRefused(result, entry);
        if (entry.canonicalized) expect(result.errors![0]!.message).toMatch(/compromised/);
      });

      it(`should refuse a CSR with the ${reencoding} form of a key whose certificate is active`, async () => {
        const key = generateKey(tmp.path, keyKindOf(reencoding));
        await certify(makeCsr(key, subject()));
        expectRefused(await submit(reencodedCsr(tmp.path, key, subject(), reencoding)), entry);
      });

      if (entry.canonicalized) {
        it(`should certify a fresh key sent in ${reencoding} form with its canonical SPKI, and then block its usual form`, async () => {
          const key = generateKey(tmp.path, keyKindOf(reencoding));
          const canonical = canonicalSpkiOf(key);
          const issued = await certify(reencodedCsr(tmp.path, key, subject(), reencoding));
          expect(Buffer.from(certificateSpki(new Uint8Array(pemBody(issued.pem)))).equals(canonical)).toBe(true);
          expect(issued.fingerprint).toBe(sha256(canonical));
          expectError(await submit(makeCsr(key, subject())), "BAD_USER_INPUT", "KEY_REUSE");
        });
      } else {
        it(`should refuse a fresh key sent in ${reencoding} form as not DER`, async () => {
          const key = generateKey(tmp.path, keyKindOf(reencoding));
          expectRefused(await submit(reencodedCsr(tmp.path, key, subject(), reencoding)), entry);
        });
      }
    }
  });
}
