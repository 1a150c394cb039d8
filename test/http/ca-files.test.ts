import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, openssl, writeFile } from "../pki/helpers.js";
import { issue } from "../certificates/helpers.js";
import { available } from "../support/deps.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { type DbKind } from "../support/postgres.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");
const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("GET /ca/<ENV>/chain.pem and root.pem on %s", (db) => {
  describe.skipIf(!hasOpenssl || (db === "postgres" && !postgres))(db, () => {
    let server: TestServer;
    let org: TestOrganization;
    const tmp = makeTempDir("kp-ca-");
    beforeAll(async () => {
      server = await startTestServer({ db });
      org = await createOrganization(server);
    });
    afterAll(async () => {
      await server?.close();
      tmp.cleanup();
    });

    it("should serve PEM files, without a token, that openssl verify takes as they are", async () => {
      const issued = await issue(server, tmp.path, org, { environment: "MTF" });
      const chainRes = await fetch(`${server.url}/ca/MTF/chain.pem`);
      expect(chainRes.status).toBe(200);
      expect(chainRes.headers.get("content-type")).toContain("application/x-pem-file");
      const chain = await chainRes.text();
      expect(chain.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
      const { caChain } = await server.ok<{ caChain: string }>(`{ caChain(environment: MTF) }`);
      expect(chain).toBe(caChain);
      const chainFile = writeFile(tmp.path, "mtf-chain.pem", chain);
      expect(openssl(["verify", "-CAfile", chainFile, issued.certFile])).toContain(": OK");

      // root.pem alone is the trust anchor; with the issuing CA as untrusted intermediate it verifies too.
      const root = await (await fetch(`${server.url}/ca/mtf/root.pem`)).text();
      const rootFile = writeFile(tmp.path, "mtf-root.pem", root);
      const subject = openssl(["x509", "-in", rootFile, "-noout", "-subject"]).replace(/^subject=/, "").trim();
      const issuer = openssl(["x509", "-in", rootFile, "-noout", "-issuer"]).replace(/^issuer=/, "").trim();
      expect(subject).toBe(issuer);
      const intermediate = writeFile(tmp.path, "mtf-issuing.pem", chain.slice(0, chain.indexOf("-----END CERTIFICATE-----") + 25));
      expect(openssl(["verify", "-CAfile", rootFile, "-untrusted", intermediate, issued.certFile])).toContain(": OK");
    });

    it("should keep the environments apart: an MTF certificate does not verify against the PRODUCTION chain", async () => {
      const issued = await issue(server, tmp.path, org, { environment: "MTF" });
      const production = writeFile(tmp.path, "production-chain.pem", await (await fetch(`${server.url}/ca/PRODUCTION/chain.pem`)).text());
      expect(() => openssl(["verify", "-CAfile", production, issued.certFile])).toThrow();
    });

    it("should answer an unknown environment or file with a JSON NOT_FOUND naming the files there are", async () => {
      for (const p of ["/ca/STAGING/chain.pem", "/ca/MTF/key.pem", "/ca/Mtf/root.pem", "/ca/MTF/__proto__"]) {
        const res = await fetch(`${server.url}${p}`);
        expect(res.status, p).toBe(404);
        const body = (await res.json()) as { error: { code: string; message: string } };
        expect(body.error.code).toBe("NOT_FOUND");
        expect(body.error.message).toContain("chain.pem");
      }
    });

    it("should send a browser opening / on to /graphql", async () => {
      const res = await fetch(`${server.url}/`, { redirect: "manual" });
      expect(res.status).toBe(302);
      expect(res.headers.get("location")).toBe("/graphql");
    });
  });
});
