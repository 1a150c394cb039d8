/**
 * Finding 6: HTTPS and WSS on the one port, from PEM files or with the KMS's
 * own TLS_SERVER certificate of an environment (the one participants pin),
 * sent with its chain.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir } from "../pki/helpers.js";
import { available } from "../support/deps.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { rawSocket } from "./helpers.js";

const ready = await available("openssl");

function httpsPost(url: string, ca: string, token: string, query: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ query });
    const req = https.request(`${url}/graphql`, {
      method: "POST",
      ca,
      headers: { "content-type": "application/json", authorization: `Bearer ${token}`, "content-length": Buffer.byteLength(body) },
    });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The certificates the server presents, leaf first (DER), verified against `ca`. */
function presentedChain(url: string, ca: string): Promise<Buffer[]> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), ca, servername: net.isIP(hostname) ? undefined : hostname }, () => {
      const chain: Buffer[] = [];
      let cert = socket.getPeerCertificate(true);
      while (cert && cert.raw && !chain.some((c) => c.equals(cert.raw))) {
        chain.push(cert.raw);
        cert = cert.issuerCertificate;
      }
      socket.end();
      resolve(chain);
    });
    socket.once("error", reject);
  });
}

const derOf = (pem: string): Buffer[] =>
  [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ""), "base64"));

describe.skipIf(!ready)("HTTPS and WSS", () => {
  const tmp = makeTempDir("kp-tls-");

  afterAll(() => tmp.cleanup());

  describe("from PEM files (KEYPORTAL_TLS_CERT / KEYPORTAL_TLS_KEY)", () => {
    let server: TestServer;
    let cert: string;
    beforeAll(async () => {
      const certFile = path.join(tmp.path, "cert.pem");
      const keyFile = path.join(tmp.path, "key.pem");
      execFileSync("openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", keyFile, "-out", certFile,
      ], { stdio: "ignore" });
      cert = readFileSync(certFile, "utf8");
      server = await startTestServer({ env: { KEYPORTAL_TLS_CERT: certFile, KEYPORTAL_TLS_KEY: keyFile } });
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should serve GraphQL over HTTPS on its port, and nothing in clear", async () => {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(await httpsPost(server.url, cert, server.operatorToken, "{ me { role } }")).toEqual({ status: 200, body: { data: { me: { role: "KMS_OPERATOR" } } } });
      const plain = await fetch(server.url.replace(/^https/, "http") + "/healthz").then(
        (r) => r.status,
        () => "refused",
      );
      expect(plain).not.toBe(200);
    });

    it("should serve graphql-ws over WSS on the same port", async () => {
      expect(server.wsUrl).toMatch(/^wss:\/\//);
      const socket = await rawSocket(server, server.operatorToken, { ca: cert });
      await socket.next("connection_ack");
      socket.send({ id: "1", type: "subscribe", payload: { query: "{ me { role } }" } });
      expect((await socket.next("next", "1")).payload).toEqual({ data: { me: { role: "KMS_OPERATOR" } } });
      socket.ws.close();
    });
  });

  describe("with the KMS's own TLS_SERVER certificate (KEYPORTAL_TLS=kms)", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ env: { KEYPORTAL_TLS: "kms", KEYPORTAL_TLS_ENVIRONMENT: "MTF" } });
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should present the environment's current TLS_SERVER certificate with its chain, verifiable from the root alone", async () => {
      const current = await server.app.services.kms.current("MTF" as never, "TLS_SERVER" as never);
      const chainPem = server.app.services.kms.chainPem(current);
      const chain = derOf(chainPem);
      const root = chainPem.slice(chainPem.lastIndexOf("-----BEGIN CERTIFICATE-----"));
      const presented = await presentedChain(server.url, root);
      expect(presented[0]!.equals(chain[0]!)).toBe(true);
      expect(presented.length).toBeGreaterThanOrEqual(2);
      expect(presented[1]!.equals(chain[1]!)).toBe(true);
      const me = await httpsPost(server.url, root, server.operatorToken, "{ me { role } }");
      expect(me).toEqual({ status: 200, body: { data: { me: { role: "KMS_OPERATOR" } } } });
    });
  });
});
