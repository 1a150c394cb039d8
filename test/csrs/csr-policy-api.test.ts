/**
 * The CSR policy through the API, on SQLite and PostgreSQL: refused CA
 * requests and critical extensions, and the ignored ones kept with the
 * request, answered by GraphQL and printed by name by `keyportal submit`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/commands.js";
import { generateKey, makeCsr, makeTempDir, openssl, writeFile } from "../pki/helpers.js";
import { craftCsr, freshKeys, orgSubject, subject, TAGS } from "../pki/crafted-csr.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { expectError } from "../certificates/helpers.js";

const hasOpenssl = await available("openssl");
const hasPostgres = await available("postgres");
const SUBMIT = `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id subject ignoredExtensions } }`;

for (const db of ["sqlite", "postgres"] as DbKind[]) {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !hasPostgres))(`CSR policy over the API on ${db}`, () => {
    let server: TestServer;
    let org: TestOrganization;
    let tmp: ReturnType<typeof makeTempDir>;
    const submit = (pem: string) =>
      server.gql<{ submitCsr: { id: string; subject: string; ignoredExtensions: string[] } }>(
        SUBMIT,
        { input: { organizationId: org.id, kind: "MTLS_CLIENT", environment: "MTF", pem } },
        org.officers[0]!.token,
      );
    const csrOf = (extensions: string[]) =>
      makeCsr(generateKey(tmp.path, "p256"), `/C=${org.country}/O=${org.name}/CN=Policy Client`, "-sha256", extensions.flatMap((e) => ["-addext", e]));

    beforeAll(async () => {
      tmp = makeTempDir("kp-csr-policy-");
      server = await startTestServer({ db });
      org = await createOrganization(server, { country: "GB" });
    });
    afterAll(async () => {
      await server?.close();
      tmp?.cleanup();
    });

    it("should refuse CA requests as BAD_USER_INPUT / CA_REQUESTED and unknown critical extensions as UNSUPPORTED_CRITICAL_EXTENSION", async () => {
      expectError(await submit(csrOf(["basicConstraints=critical,CA:TRUE"])), "BAD_USER_INPUT", "CA_REQUESTED");
      expectError(await submit(csrOf(["keyUsage=critical,keyCertSign"])), "BAD_USER_INPUT", "CA_REQUESTED");
      expectError(await submit(csrOf(["1.3.6.1.4.1.99999.7=critical,ASN1:UTF8String:must understand"])), "BAD_USER_INPUT", "UNSUPPORTED_CRITICAL_EXTENSION");
      const { certificateSigningRequests } = await server.ok<{ certificateSigningRequests: { totalCount: number } }>(
        `{ certificateSigningRequests(filter: { organizationId: "${org.id}" }) { totalCount } }`,
      );
      expect(certificateSigningRequests.totalCount).toBe(0);
    });

    it("should keep the ignored extensions with the request, answer them, and sign without them", async () => {
      const result = await submit(csrOf(["subjectAltName=DNS:evil.example", "keyUsage=digitalSignature,keyEncipherment", "extendedKeyUsage=clientAuth"]));
      expect(result.errors).toBeUndefined();
      expect(result.data!.submitCsr.ignoredExtensions).toEqual(["2.5.29.17", "2.5.29.15"]);
      const { certificateSigningRequest } = await server.ok<{ certificateSigningRequest: { ignoredExtensions: string[] } }>(
        `query($id: ID!) { certificateSigningRequest(id: $id) { ignoredExtensions } }`,
        { id: result.data!.submitCsr.id },
      );
      expect(certificateSigningRequest.ignoredExtensions).toEqual(["2.5.29.17", "2.5.29.15"]);
      const { signCsr } = await server.ok<{ signCsr: { pem: string } }>(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { pem } }`, { id: result.data!.submitCsr.id });
      const text = openssl(["x509", "-noout", "-text"], { input: signCsr.pem });
      expect(text).not.toContain("evil.example");
      expect(text).toMatch(/Key Usage: critical\s+Digital Signature\n/);
    });

    it("should refuse a CR LF in the CN and certify a UTF-8 C re-encoded as PrintableString", async () => {
      freshKeys();
      const crlf = await submit(craftCsr({ subject: orgSubject(org, "Acme\r\nBcc: evil@example.com") }));
      expectError(crlf, "BAD_USER_INPUT", "SUBJECT_CHARACTER_NOT_ALLOWED");
      freshKeys();
      // zlint e_subject_dn_country_not_printable_string: the request's UTF8String C must not reach the certificate as such.
      const utf8Country = craftCsr({ subject: subject([["C", TAGS.UTF8, org.country], ["O", TAGS.UTF8, org.name], ["CN", TAGS.UTF8, "Country Client"]]) });
      const accepted = await submit(utf8Country);
      expect(accepted.errors, JSON.stringify(accepted.errors)).toBeUndefined();
      const { signCsr } = await server.ok<{ signCsr: { pem: string } }>(`mutation($id: ID!) { signCsr(input: { csrId: $id }) { pem } }`, { id: accepted.data!.submitCsr.id });
      const der = Buffer.from(openssl(["x509", "-outform", "DER"], { input: signCsr.pem }), "latin1");
      expect(openssl(["asn1parse", "-inform", "DER"], { input: der })).toMatch(/countryName\s*\n.*PRINTABLESTRING\s+:GB/);
    });

    if (db === "sqlite") {
      it("should have keyportal submit print the ignored extensions by name", async () => {
        const file = writeFile(tmp.path, "cli.csr", csrOf(["subjectAltName=DNS:evil.example", "nsComment=hello"]));
        const out: string[] = [];
        const err: string[] = [];
        const code = await main(
          ["submit", "--csr", file, "--kind", "MTLS_CLIENT", "--environment", "MTF", "--organization-id", org.id],
          { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: org.officers[0]!.token },
          (l) => out.push(l),
          (l) => err.push(l),
        );
        expect(code, err.join("\n")).toBe(0);
        expect(out.join("\n")).toContain("ignored extensions (the profile does not grant them): subjectAltName (2.5.29.17), nsComment (2.16.840.1.113730.1.13)");
      });
    }
  });
}
