import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "reflect-metadata";
import { createHash, webcrypto } from "node:crypto";
import { Pkcs10CertificateRequestGenerator } from "@peculiar/x509";
import { available } from "../support/deps.js";
import { CertificateKind } from "../../src/kernel/domain.js";
import { DomainError } from "../../src/kernel/errors.js";
import { parseCsr } from "../../src/pki/csr.js";
import { DEFAULT_PROFILES } from "../../src/pki/profiles.js";
import { generateKey, makeCsr, makeTempDir, openssl, pemBody, toPem, writeFile, type TestKey } from "./helpers.js";

const MTLS = DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT];
const ENCRYPTION = DEFAULT_PROFILES[CertificateKind.ENCRYPTION];
const ORG = { organizationName: "Acme Bank", country: "GB" };
const SUBJECT = "/C=GB/O=Acme Bank/CN=Acme Client";

async function refusal(promise: Promise<unknown>): Promise<DomainError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(DomainError);
    const err = e as DomainError;
    expect(err.code).toBe("BAD_USER_INPUT");
    // Messages are sentences for people, not codes.
    expect(err.message).toMatch(/^[A-Z].+\.$/);
    return err;
  }
  throw new Error("expected the CSR to be refused");
}

describe.skipIf(!(await available("openssl")))("parseCsr with CSRs made by openssl", () => {
  const tmp = makeTempDir();
  const keys = new Map<TestKey, string>();
  const key = (kind: TestKey) => {
    if (!keys.has(kind)) keys.set(kind, generateKey(tmp.path, kind));
    return keys.get(kind)!;
  };

  beforeAll(() => {
    for (const k of ["rsa2048", "p256", "p384"] as const) key(k);
  });
  afterAll(() => tmp.cleanup());

  it.each([
    ["rsa2048", "RSA-2048"],
    ["p256", "EC-P256"],
    ["p384", "EC-P384"],
  ] as const)("accepts a %s CSR and reports its subject, key algorithm and fingerprint", async (kind, label) => {
    const pem = makeCsr(key(kind), SUBJECT);
    const parsed = await parseCsr(pem, MTLS, ORG);
    expect(parsed.subject).toBe("CN=Acme Client,O=Acme Bank,C=GB");
    expect(parsed.commonName).toBe("Acme Client");
    expect(parsed.keyAlgorithm).toBe(label);
    const spkiDer = Buffer.from(pemBody(openssl(["pkey", "-in", key(kind), "-pubout"])));
    expect(Buffer.from(parsed.spki).equals(spkiDer)).toBe(true);
    expect(parsed.publicKeyFingerprint).toBe(createHash("sha256").update(spkiDer).digest("hex"));
    expect(Buffer.from(parsed.der).equals(pemBody(pem))).toBe(true);
    expect(parsed.pem.startsWith("-----BEGIN CERTIFICATE REQUEST-----\n")).toBe(true);
    // openssl writes UTF8Strings; the certificate's subject is re-encoded: PrintableString where the value fits.
    expect(openssl(["asn1parse", "-inform", "DER"], { input: Buffer.from(parsed.subjectDer) }).match(/PRINTABLESTRING/g)).toHaveLength(3);
    expect(parsed.ignoredExtensions).toEqual([]);
  });

  it("accepts optional OU, L and ST, ignores challengePassword and reports the requested extensions it does not grant", async () => {
    const pem = makeCsr(key("rsa2048"), "/C=GB/ST=London/L=City/O=Acme Bank/OU=Payments/CN=Acme Client", "-sha256", [
      "-addext",
      "subjectAltName=DNS:evil.example",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-addext",
      "keyUsage=digitalSignature,keyEncipherment",
      "-addext",
      "extendedKeyUsage=clientAuth",
      "-passin",
      "pass:x",
    ]);
    const config = writeFile(
      tmp.path,
      "challenge.cnf",
      "[req]\ndistinguished_name=dn\nattributes=attrs\nprompt=no\n[dn]\nC=GB\nO=Acme Bank\nCN=Acme Client\n[attrs]\nchallengePassword=secret123\n",
    );
    const withChallenge = openssl(["req", "-new", "-key", key("p256"), "-sha256", "-config", config]);
    expect(openssl(["req", "-noout", "-text"], { input: withChallenge })).toContain("challengePassword");
    const parsed = await parseCsr(pem, MTLS, ORG);
    expect(parsed.subject).toBe("CN=Acme Client,OU=Payments,O=Acme Bank,L=City,ST=London,C=GB");
    // CA:FALSE and clientAuth are what the certificate says; keyEncipherment is not granted to a TLS client, nor the SAN.
    expect(parsed.ignoredExtensions).toEqual(["2.5.29.17", "2.5.29.15"]);
    expect((await parseCsr(withChallenge, MTLS, ORG)).commonName).toBe("Acme Client");
  });

  it("accepts an RSA 3072 key for an ENCRYPTION certificate", async () => {
    const parsed = await parseCsr(makeCsr(key("rsa3072"), SUBJECT), ENCRYPTION, ORG);
    expect(parsed.keyAlgorithm).toBe("RSA-3072");
  });

  it("accepts an RSASSA-PSS signature with SHA-256", async () => {
    const pem = makeCsr(key("rsa2048"), SUBJECT, "-sha256", ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]);
    expect(openssl(["req", "-noout", "-text"], { input: pem })).toContain("rsassaPss");
    expect((await parseCsr(pem, MTLS, ORG)).keyAlgorithm).toBe("RSA-2048");
  });

  describe("refuses", () => {
    it.each([
      ["-sha1", "SHA-1", /sha1WithRSAEncryption/],
      ["-md5", "MD5", /md5WithRSAEncryption/],
    ])("a CSR signed with %s as WEAK_SIGNATURE_ALGORITHM", async (digest, _name, message) => {
      const err = await refusal(parseCsr(makeCsr(key("rsa2048"), SUBJECT, digest), MTLS, ORG));
      expect(err.reason).toBe("WEAK_SIGNATURE_ALGORITHM");
      expect(err.message).toMatch(message);
    });

    it("an ECDSA-with-SHA1 CSR as WEAK_SIGNATURE_ALGORITHM", async () => {
      const err = await refusal(parseCsr(makeCsr(key("p256"), SUBJECT, "-sha1"), MTLS, ORG));
      expect(err.reason).toBe("WEAK_SIGNATURE_ALGORITHM");
    });

    it("a weak signature before looking at a weak key (SHA-1 with RSA 1024 is about the signature)", async () => {
      const err = await refusal(parseCsr(makeCsr(key("rsa1024"), SUBJECT, "-sha1"), MTLS, ORG));
      expect(err.reason).toBe("WEAK_SIGNATURE_ALGORITHM");
    });

    it("an RSA 1024 key as WEAK_KEY", async () => {
      const err = await refusal(parseCsr(makeCsr(key("rsa1024"), SUBJECT), MTLS, ORG));
      expect(err.reason).toBe("WEAK_KEY");
      expect(err.message).toContain("1024");
    });

    it("an RSA key with public exponent 3 as WEAK_KEY", async () => {
      const err = await refusal(parseCsr(makeCsr(key("rsa2048e3"), SUBJECT), MTLS, ORG));
      expect(err.reason).toBe("WEAK_KEY");
      expect(err.message).toContain("exponent is 3");
    });

    it.each([
      ["ed25519", null, "Ed25519"],
      ["p521", "-sha256", "EC-P521"],
      ["rsa2560", "-sha256", "RSA-2560"],
    ] as const)("a %s key as UNSUPPORTED_KEY_ALGORITHM", async (kind, digest, label) => {
      const err = await refusal(parseCsr(makeCsr(key(kind), SUBJECT, digest), MTLS, ORG));
      expect(err.reason).toBe("UNSUPPORTED_KEY_ALGORITHM");
      expect(err.message).toContain(label);
    });

    it("an EC key for an ENCRYPTION certificate as UNSUPPORTED_KEY_ALGORITHM", async () => {
      const err = await refusal(parseCsr(makeCsr(key("p256"), SUBJECT), ENCRYPTION, ORG));
      expect(err.reason).toBe("UNSUPPORTED_KEY_ALGORITHM");
      expect(err.message).toContain("ENCRYPTION");
    });

    it("a CSR whose signature has one flipped byte as CSR_SIGNATURE_INVALID", async () => {
      for (const kind of ["rsa2048", "p256"] as const) {
        const der = pemBody(makeCsr(key(kind), SUBJECT));
        der[der.length - 2]! ^= 0x01; // inside the signature BIT STRING, the last element of the CSR
        const err = await refusal(parseCsr(toPem(der, "CERTIFICATE REQUEST"), MTLS, ORG));
        expect(err.reason).toBe("CSR_SIGNATURE_INVALID");
      }
    });

    it("a CSR whose subject was altered after signing as CSR_SIGNATURE_INVALID", async () => {
      const der = pemBody(makeCsr(key("rsa2048"), "/C=GB/O=Acme Bank/CN=Acme Clienu"));
      const at = der.indexOf(Buffer.from("Acme Clienu"));
      der[at + 10] = "t".charCodeAt(0);
      const err = await refusal(parseCsr(toPem(der, "CERTIFICATE REQUEST"), MTLS, ORG));
      expect(err.reason).toBe("CSR_SIGNATURE_INVALID");
    });

    it.each([
      ["a wrong organization", "/C=GB/O=Acme Bank Ltd/CN=Acme Client", /organization \(O\) is "Acme Bank Ltd"/],
      ["an organization differing only in case", "/C=GB/O=acme bank/CN=Acme Client", /must be exactly "Acme Bank"/],
      ["a wrong country", "/C=FR/O=Acme Bank/CN=Acme Client", /country \(C\) is "FR"/],
      ["a missing CN", "/C=GB/O=Acme Bank", /no CN attribute/],
      ["a missing O", "/C=GB/CN=Acme Client", /no O attribute/],
      ["an emailAddress attribute", "/C=GB/O=Acme Bank/CN=Acme Client/emailAddress=a@acme.example", /emailAddress is not allowed/],
      ["a multi-valued RDN", "/C=GB/O=Acme Bank/CN=Acme Client+OU=Payments", /multi-valued RDN/],
    ])("a subject with %s as SUBJECT_MISMATCH", async (_what, subject, message) => {
      const err = await refusal(parseCsr(makeCsr(key("p256"), subject), MTLS, ORG));
      expect(err.reason).toBe("SUBJECT_MISMATCH");
      expect(err.message).toMatch(message);
    });

    it("a 65-character CN as SUBJECT_VALUE_TOO_LONG (built with WebCrypto: openssl itself refuses to write one)", async () => {
      const keys = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
      const csr = await Pkcs10CertificateRequestGenerator.create(
        { name: [{ C: ["GB"] }, { O: ["Acme Bank"] }, { CN: ["x".repeat(65)] }], keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } },
        webcrypto as Crypto,
      );
      const err = await refusal(parseCsr(csr.toString("pem"), MTLS, ORG));
      expect(err.reason).toBe("SUBJECT_VALUE_TOO_LONG");
      expect(err.message).toMatch(/65 characters long/);
    });

    it("accepts a CN of exactly 64 characters", async () => {
      const parsed = await parseCsr(makeCsr(key("p256"), `/C=GB/O=Acme Bank/CN=${"x".repeat(64)}`), MTLS, ORG);
      expect(parsed.commonName).toHaveLength(64);
    });

    it("an empty CN as SUBJECT_MISMATCH", async () => {
      // openssl req -subj can't write an empty value; build the request from a config instead.
      const config = writeFile(tmp.path, "empty-cn.cnf", "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nC=GB\nO=Acme Bank\nCN=\" \"\n");
      const pem = openssl(["req", "-new", "-key", key("p256"), "-sha256", "-config", config]);
      expect(openssl(["req", "-noout", "-subject"], { input: pem })).toMatch(/CN\s*=/);
      const err = await refusal(parseCsr(pem, MTLS, ORG));
      expect(err.reason).toBe("SUBJECT_MISMATCH");
    });

    it("trailing garbage after the DER as INVALID_CSR", async () => {
      const der = Buffer.concat([pemBody(makeCsr(key("p256"), SUBJECT)), Buffer.from("garbage")]);
      const err = await refusal(parseCsr(toPem(der, "CERTIFICATE REQUEST"), MTLS, ORG));
      expect(err.reason).toBe("INVALID_CSR");
      expect(err.message).toMatch(/7 bytes of trailing data/);
    });

    it("two PEM blocks as INVALID_CSR", async () => {
      const pem = makeCsr(key("p256"), SUBJECT) + makeCsr(key("rsa2048"), SUBJECT);
      const err = await refusal(parseCsr(pem, MTLS, ORG));
      expect(err.reason).toBe("INVALID_CSR");
      expect(err.message).toMatch(/several PEM blocks/);
    });

    it("a 70 KB PEM as INVALID_CSR before decoding it", async () => {
      const pem = toPem(Buffer.alloc(52 * 1024, 0x41), "CERTIFICATE REQUEST");
      expect(pem.length).toBeGreaterThan(70_000);
      const err = await refusal(parseCsr(pem, MTLS, ORG));
      expect(err.reason).toBe("INVALID_CSR");
      expect(err.message).toMatch(/larger than 64 KB/);
    });

    it.each([
      ["text that is not PEM", "hello"],
      ["a certificate instead of a request", "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"],
      ["PEM whose body is not DER", "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE REQUEST-----\n"],
      ["PEM with characters outside base64", "-----BEGIN CERTIFICATE REQUEST-----\nMII*BBB=\n-----END CERTIFICATE REQUEST-----\n"],
      ["an unterminated PEM block", "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n"],
    ])("%s as INVALID_CSR", async (_what, pem) => {
      const err = await refusal(parseCsr(pem, MTLS, ORG));
      expect(err.reason).toBe("INVALID_CSR");
    });

    it("a truncated request as INVALID_CSR", async () => {
      const der = pemBody(makeCsr(key("p256"), SUBJECT));
      const err = await refusal(parseCsr(toPem(der.subarray(0, der.length - 10), "CERTIFICATE REQUEST"), MTLS, ORG));
      expect(err.reason).toBe("INVALID_CSR");
    });
  });
});
