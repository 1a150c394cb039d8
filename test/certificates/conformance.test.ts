/**
 * What a PKI auditor runs against the issued certificates, with the real
 * openssl binary and a real server on SQLite and PostgreSQL: each kind is
 * usable for its purpose only, the whole chain verifies with CRLs checked
 * at every level, CRLs are strict DER, the CA certificates are served at
 * their AIA URLs, and the OCSP responder answers good, revoked and unknown.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManualClock } from "../../src/kernel/clock.js";
import { Environment } from "../../src/kernel/domain.js";
import { children, readTlv } from "../../src/pki/der.js";
import { makeTempDir, openssl, opensslResult, toPem, writeFile } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { COMPROMISE, issue, REVOKE, type Issued } from "./helpers.js";
import { expectStrictDer } from "../pki/strict-der.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");
const ENVIRONMENTS = [Environment.MTF, Environment.PRODUCTION] as const;

/** openssl without blocking the event loop: `openssl ocsp` talks to the server running in this very process. */
async function opensslAsync(args: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)("openssl", args, { timeout: 20_000, encoding: "latin1" });
    return { ok: true, output: stdout + stderr };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, output: `${err.stdout ?? ""}${err.stderr ?? ""}` };
  }
}

/** For each kind, the one openssl purpose it must pass and the ones it must fail. */
const PURPOSES: Array<{ kind: string; keyKind: "p256" | "rsa2048"; passes: string; fails: string[] }> = [
  { kind: "MTLS_CLIENT", keyKind: "p256", passes: "sslclient", fails: ["sslserver", "nssslserver", "smimesign", "smimeencrypt", "crlsign", "timestampsign"] },
  { kind: "MTLS_CLIENT", keyKind: "rsa2048", passes: "sslclient", fails: ["sslserver", "smimesign", "smimeencrypt"] },
  { kind: "SIGNING", keyKind: "p256", passes: "smimesign", fails: ["sslclient", "sslserver", "nssslserver", "smimeencrypt", "crlsign", "timestampsign"] },
  { kind: "ENCRYPTION", keyKind: "rsa2048", passes: "smimeencrypt", fails: ["sslclient", "sslserver", "nssslserver", "smimesign", "crlsign", "timestampsign"] },
];

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`PKI conformance on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    let tmp: ReturnType<typeof makeTempDir>;
    const files: Record<string, string> = {};

    async function fetchDer(path: string, type: string): Promise<Uint8Array> {
      const res = await fetch(`${server.url}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toBe(type);
      return new Uint8Array(await res.arrayBuffer());
    }

    /** Both CRLs of an environment as one PEM file, and their DER. */
    async function crls(environment: Environment): Promise<{ file: string; ders: Uint8Array[] }> {
      const ders = [await fetchDer(`/crl/${environment}.crl`, "application/pkix-crl"), await fetchDer(`/crl/${environment}-root.crl`, "application/pkix-crl")];
      return { file: writeFile(tmp.path, `${environment}-crls-${Date.now()}.pem`, ders.map((d) => toPem(d, "X509 CRL")).join("")), ders };
    }

    beforeAll(async () => {
      tmp = makeTempDir("kp-conformance-");
      // openssl checks validity against the real time: start the test clock at it.
      server = await startTestServer({ db, clock: new ManualClock(new Date(Math.floor(Date.now() / 1000) * 1000)) });
      org = await createOrganization(server, { country: "GB" });
      for (const env of ENVIRONMENTS) {
        // The routes the AIA caIssuers URLs name: DER, as RFC 5280 4.2.2.1 wants.
        const issuing = await fetchDer(`/ca/${env}/issuing.crt`, "application/pkix-cert");
        const root = await fetchDer(`/ca/${env}/root.crt`, "application/pkix-cert");
        files[`${env}-issuing`] = writeFile(tmp.path, `${env}-issuing.pem`, toPem(issuing, "CERTIFICATE"));
        files[`${env}-root`] = writeFile(tmp.path, `${env}-root.pem`, toPem(root, "CERTIFICATE"));
      }
    }, 60_000);
    afterAll(async () => {
      await server?.close();
      tmp?.cleanup();
    });

    it("should serve at /ca/<ENV>/ exactly the CA certificates of the environment's chain, and name them in the AIA", async () => {
      for (const env of ENVIRONMENTS) {
        const ca = server.app.services.authorities.of(env);
        expect(Buffer.from(await fetchDer(`/ca/${env.toLowerCase()}/issuing.crt`, "application/pkix-cert")).equals(Buffer.from(ca.issuing.rawData))).toBe(true);
        const issuingText = openssl(["x509", "-in", files[`${env}-issuing`]!, "-noout", "-text"]);
        expect(issuingText).toContain(`CA Issuers - URI:${ca.urls.rootCertificate}`);
        expect(issuingText).toContain(`URI:${ca.urls.rootCrl}`);
        expect(new URL(ca.urls.rootCertificate).pathname).toBe(`/ca/${env}/root.crt`);
        expect(new URL(ca.urls.issuingCertificate).pathname).toBe(`/ca/${env}/issuing.crt`);
        expect(new URL(ca.urls.ocsp).pathname).toBe(`/ocsp/${env}`);
        expect(new URL(ca.urls.rootCrl).pathname).toBe(`/crl/${env}-root.crl`);
        // Every CA and KMS subject names its country (pkilint, zlint e_ca_country_name_missing).
        expect(openssl(["x509", "-in", files[`${env}-root`]!, "-noout", "-subject"])).toMatch(/^subject=C = US, O = KeyPortal, CN = /);
        expect(openssl(["x509", "-in", files[`${env}-issuing`]!, "-noout", "-subject"])).toMatch(/^subject=C = US, O = KeyPortal, CN = /);
        expectStrictDer(new Uint8Array(ca.root.rawData), "certificate");
        expectStrictDer(new Uint8Array(ca.issuing.rawData), "certificate");
        for (const purpose of ["message_signing", "message_encryption", "tls_server"]) {
          const res = await fetch(`${server.url}/kms/${env}/${purpose}.pem`);
          expect(res.status).toBe(200);
          const pem = await res.text();
          expect(openssl(["x509", "-noout", "-subject"], { input: pem }), purpose).toMatch(/^subject=C = US, O = KeyPortal, CN = KeyPortal KMS /);
          expect(openssl(["x509", "-noout", "-text"], { input: pem })).toContain(`OCSP - URI:${ca.urls.ocsp}`);
        }
      }
      expect((await fetch(`${server.url}/ca/MTF/other.crt`)).status).toBe(404);
      expect((await fetch(`${server.url}/ca/TEST/issuing.crt`)).status).toBe(404);
    });

    it.each(PURPOSES)("should make a $kind certificate ($keyKind) pass openssl -purpose $passes and fail every other purpose", async ({ kind, keyKind, passes, fails }) => {
      const cert = await issue(server, tmp.path, org, { kind, keyKind, environment: "MTF" });
      // Strict DER: decoded and re-encoded by two decoders, byte for byte the same.
      expectStrictDer(new Uint8Array(Buffer.from(openssl(["x509", "-in", cert.certFile, "-outform", "DER"]), "latin1")), "certificate");
      const verify = (purpose: string) =>
        opensslResult(["verify", "-x509_strict", "-purpose", purpose, "-CAfile", files["MTF-root"]!, "-untrusted", files["MTF-issuing"]!, cert.certFile]);
      expect(verify(passes).stdout).toContain(": OK");
      for (const purpose of fails) {
        const result = verify(purpose);
        expect(result.ok, `${kind} must not verify for ${purpose}`).toBe(false);
        expect(result.stdout + result.stderr).toMatch(/unsuitable certificate purpose/);
      }
    });

    it("should verify the whole chain with -crl_check_all in both environments, and fail once the leaf is revoked", async () => {
      for (const env of ENVIRONMENTS) {
        const cert = await issue(server, tmp.path, org, { environment: env });
        const verify = (crlFile: string) =>
          opensslResult([
            "verify",
            "-x509_strict",
            "-crl_check_all",
            "-CAfile",
            files[`${env}-root`]!,
            "-untrusted",
            files[`${env}-issuing`]!,
            "-CRLfile",
            crlFile,
            cert.certFile,
          ]);
        const before = await crls(env);
        expect(verify(before.file).stdout, env).toContain(": OK");
        await server.ok(REVOKE, { id: cert.id, reason: "UNSPECIFIED" });
        const after = await crls(env);
        const result = verify(after.file);
        expect(result.ok).toBe(false);
        expect(result.stdout + result.stderr).toContain("certificate revoked");
      }
    });

    it("should publish CRLs in strict DER, with no crlEntryExtensions on an entry revoked as UNSPECIFIED", async () => {
      const unspecified = await issue(server, tmp.path, org, { environment: "MTF" });
      const compromised = await issue(server, tmp.path, org, { environment: "MTF" });
      await server.ok(REVOKE, { id: unspecified.id, reason: "UNSPECIFIED" });
      await server.ok(COMPROMISE, { id: compromised.id, note: null });
      const { ders } = await crls(Environment.MTF);
      for (const der of ders) expectStrictDer(der);
      const entries = revokedEntries(ders[0]!);
      const bySerial = new Map(entries.map((e) => [e.serial, e.fields]));
      // RFC 5280 5.1.2.6: serial and date only, the extensions field absent (not an empty SEQUENCE, 30 00).
      expect(bySerial.get(unspecified.serialNumber)).toBe(2);
      expect(bySerial.get(compromised.serialNumber)).toBe(3);
      // The root's CRL has no revokedCertificates field at all while it lists nobody.
      expect(revokedEntries(ders[1]!)).toEqual([]);
    });

    for (const env of ENVIRONMENTS) {
      it(`should answer openssl ocsp good, revoked (with time and reason) and unknown for ${env}, over POST and GET`, async () => {
        const good: Issued = await issue(server, tmp.path, org, { environment: env });
        const revoked: Issued = await issue(server, tmp.path, org, { environment: env });
        await server.ok(COMPROMISE, { id: revoked.id, note: null });
        const url = `${server.url}/ocsp/${env}`;
        const common = ["-issuer", files[`${env}-issuing`]!, "-CAfile", files[`${env}-root`]!, "-verify_other", files[`${env}-issuing`]!];
        const { ok, output: out } = await opensslAsync([
          "ocsp",
          ...common,
          "-url",
          url,
          "-cert",
          good.certFile,
          "-cert",
          revoked.certFile,
          "-serial",
          "0x7a11c0ffee",
        ]);
        expect(ok, out).toBe(true);
        expect(out).toContain("Response verify OK");
        expect(out).toContain(`${good.certFile}: good`);
        expect(out).toMatch(new RegExp(`${revoked.certFile}: revoked\\n\\s+This Update: .*\\n\\s+Next Update: .*\\n\\s+Reason: keyCompromise\\n\\s+Revocation Time: `));
        expect(out).toContain("0x7a11c0ffee: unknown");
        // The nonce openssl sent came back (it says "WARNING: no nonce in response" otherwise).
        expect(out).not.toMatch(/nonce/i);

        // GET (RFC 6960 A.1): the same request, base64 and URL-encoded in the path.
        const reqFile = `${tmp.path}/${env}-req.der`;
        openssl(["ocsp", "-issuer", files[`${env}-issuing`]!, "-cert", good.certFile, "-no_nonce", "-reqout", reqFile]);
        const encoded = encodeURIComponent(Buffer.from(openssl(["base64", "-A", "-in", reqFile]), "latin1").toString("latin1"));
        const res = await fetch(`${url}/${encoded}`);
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toBe("application/ocsp-response");
        const respFile = writeFile(tmp.path, `${env}-resp.der`, new Uint8Array(await res.arrayBuffer()));
        const fromGet = openssl(["ocsp", ...common, "-reqin", reqFile, "-respin", respFile, "-cert", good.certFile]);
        expect(fromGet).toContain(`${good.certFile}: good`);
      });
    }

    it("should answer unauthorized for a certificate of the other environment, and malformedRequest for junk", async () => {
      const mtf = await issue(server, tmp.path, org, { environment: "MTF" });
      const result = await opensslAsync(["ocsp", "-issuer", files["MTF-issuing"]!, "-cert", mtf.certFile, "-url", `${server.url}/ocsp/PRODUCTION`, "-noverify"]);
      expect(result.output).toContain("Responder Error: unauthorized (6)");
      const junk = await fetch(`${server.url}/ocsp/MTF`, { method: "POST", headers: { "content-type": "application/ocsp-request" }, body: "not DER" });
      expect(junk.status).toBe(200);
      expect(Buffer.from(await junk.arrayBuffer()).toString("hex")).toBe("30030a0101");
    });
  });
}

/** The revokedCertificates entries of a DER CRL: serial (hex) and how many fields each entry has. */
function revokedEntries(der: Uint8Array): Array<{ serial: string; fields: number }> {
  const tbs = children(der, readTlv(der, 0))[0]!;
  const fields = children(der, tbs);
  // version, signature, issuer, thisUpdate, nextUpdate, then revokedCertificates (a SEQUENCE) if any, then [0] extensions.
  const list = fields[5]?.tag === 0x30 ? fields[5] : undefined;
  if (!list) return [];
  return children(der, list).map((entry) => {
    const parts = children(der, entry);
    return { serial: Buffer.from(der.subarray(parts[0]!.contentStart, parts[0]!.end)).toString("hex"), fields: parts.length };
  });
}
