import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { available } from "../support/deps.js";
import { approveAsSecondOperator } from "../support/dual-control.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { generateKey, makeCsr, makeTempDir, openssl, writeFile } from "../pki/helpers.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");

const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id status subject keyAlgorithm publicKeyFingerprint } }`;
const SIGN = `mutation($input: SignCsrInput!) { signCsr(input: $input) { id serialNumber status pem chainPem derBase64 pkcs7Base64 notBefore notAfter issuer csr { id status } } }`;

function csrFor(dir: string, org: TestOrganization, cn: string, key: "p256" | "rsa2048" = "p256"): string {
  const keyPath = generateKey(dir, key);
  return makeCsr(keyPath, `/C=${org.country}/O=${org.name}/CN=${cn}`);
}

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`CSR to certificate on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    const tmp = makeTempDir("kp-csr-flow-");

    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "DE" });
    });
    afterAll(async () => {
      await server?.close();
      tmp.cleanup();
    });

    it("should issue a certificate that openssl verifies against caChain and download it over REST", async () => {
      const officer = org.officers[0]!;
      const pem = csrFor(tmp.path, org, "Client One");
      const submitted = await server.ok<{ submitCsr: { id: string; status: string; subject: string; keyAlgorithm: string } }>(
        SUBMIT,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } },
        officer.token,
      );
      expect(submitted.submitCsr).toMatchObject({ status: "PENDING", keyAlgorithm: "EC-P256", subject: `CN=Client One,O=${org.name},C=DE` });
      const signed = await server.ok<{ signCsr: { id: string; serialNumber: string; status: string; pem: string; chainPem: string; pkcs7Base64: string; csr: { status: string } } }>(
        SIGN,
        { input: { csrId: submitted.submitCsr.id, validityDays: 30 } },
      );
      expect(signed.signCsr.status).toBe("ACTIVE");
      expect(signed.signCsr.csr.status).toBe("SIGNED");
      expect(signed.signCsr.serialNumber).toMatch(/^[0-9a-f]{16,40}$/);
      const { caChain } = await server.ok<{ caChain: string }>(`{ caChain(environment: MTF) }`, {}, officer.token);
      const chainFile = writeFile(tmp.path, "mtf-chain.pem", caChain);
      const leafFile = writeFile(tmp.path, "leaf.pem", signed.signCsr.pem);
      expect(openssl(["verify", "-CAfile", chainFile, leafFile])).toContain("OK");

      const res = await fetch(`${server.url}/certificates/${signed.signCsr.id}.der`, { headers: { authorization: `Bearer ${officer.token}` } });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("application/pkix-cert");
      const derFile = writeFile(tmp.path, "leaf.der", new Uint8Array(await res.arrayBuffer()));
      expect(openssl(["x509", "-inform", "DER", "-in", derFile, "-noout", "-serial"]).toLowerCase()).toContain(signed.signCsr.serialNumber);
      const p7 = writeFile(tmp.path, "bundle.p7b", new Uint8Array(Buffer.from(signed.signCsr.pkcs7Base64, "base64")));
      const certs = openssl(["pkcs7", "-inform", "DER", "-in", p7, "-print_certs", "-noout"]);
      expect(certs.match(/subject=/g)?.length).toBe(3);
    });

    it("should refuse another organization's download with 404 and an anonymous one with 401", async () => {
      const other = await createOrganization(server, { country: "FR" });
      const pem = csrFor(tmp.path, org, "Client Two");
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        SUBMIT,
        { input: { organizationId: org.id, kind: "SIGNING", environment: "PRODUCTION", pem } },
        org.officers[1]!.token,
      );
      await approveAsSecondOperator(server, submitCsr.id);
      const { signCsr } = await server.ok<{ signCsr: { id: string } }>(SIGN, { input: { csrId: submitCsr.id } });
      const foreign = await fetch(`${server.url}/certificates/${signCsr.id}.pem`, { headers: { authorization: `Bearer ${other.officers[0]!.token}` } });
      expect(foreign.status).toBe(404);
      const anonymous = await fetch(`${server.url}/certificates/${signCsr.id}.pem`);
      expect(anonymous.status).toBe(401);
      const viaGraphql = await server.gql<{ certificate: null }>(`query($id: ID!) { certificate(id: $id) { id } }`, { id: signCsr.id }, other.officers[0]!.token);
      expect(viaGraphql.data?.certificate).toBeNull();
    });

    it("should issue exactly one certificate when 50 signCsr calls race on one request", async () => {
      const pem = csrFor(tmp.path, org, "Raced Client");
      const { submitCsr } = await server.ok<{ submitCsr: { id: string } }>(
        SUBMIT,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "PRODUCTION", pem } },
        org.officers[0]!.token,
      );
      await approveAsSecondOperator(server, submitCsr.id);
      const results = await Promise.all(
        Array.from({ length: 50 }, () => server.gql<{ signCsr: { id: string } }>(SIGN, { input: { csrId: submitCsr.id } }, server.operatorToken)),
      );
      const successes = results.filter((r) => r.data?.signCsr);
      const refusals = results.filter((r) => r.errors?.[0]?.extensions?.code === "CONFLICT" && r.errors[0].extensions.reason === "ALREADY_DECIDED");
      expect(successes).toHaveLength(1);
      expect(refusals).toHaveLength(49);
      const { certificates } = await server.ok<{ certificates: { totalCount: number } }>(
        `query($f: CertificateFilter) { certificates(filter: $f) { totalCount } }`,
        { f: { organizationId: org.id, environment: "PRODUCTION", kind: "MTLS_CLIENT" } },
      );
      expect(certificates.totalCount).toBe(1);
    });

    it("should refuse a CSR while the organization has fewer than two active officers", async () => {
      const lonely = await createOrganization(server, { officerCount: 1 });
      const result = await server.gql(SUBMIT, { input: { organizationId: lonely.id, kind: "SIGNING", environment: "MTF", pem: csrFor(tmp.path, lonely, "Early") } }, lonely.officers[0]!.token);
      expect(result.errors?.[0]?.extensions).toEqual({ code: "PRECONDITION_FAILED", reason: "INSUFFICIENT_OFFICERS" });
    });

    it("should refuse a key that is already certified or pending with KEY_REUSE", async () => {
      const keyPath = generateKey(tmp.path, "p256");
      const pem = makeCsr(keyPath, `/C=${org.country}/O=${org.name}/CN=Reuse`);
      const input = { organizationId: org.id, kind: "SIGNING", environment: "MTF", pem };
      await server.ok(SUBMIT, { input }, org.officers[0]!.token);
      const again = await server.gql(SUBMIT, { input: { ...input, pem: makeCsr(keyPath, `/C=${org.country}/O=${org.name}/CN=Reuse Two`) } }, org.officers[0]!.token);
      expect(again.errors?.[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", reason: "KEY_REUSE" });
    });
  });
}
