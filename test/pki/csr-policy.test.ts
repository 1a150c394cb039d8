/**
 * The CSR policy against crafted requests: what a request may ask for
 * (issue 11 finding 1), what its subject may hold and how it is re-encoded
 * (issue 11 finding 2, issue 12 finding 5), and signature encodings checked
 * as strictly as `openssl req -verify`.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { CertificateKind } from "../../src/kernel/domain.js";
import { DomainError } from "../../src/kernel/errors.js";
import { parseCsr } from "../../src/pki/csr.js";
import { parseName } from "../../src/pki/name.js";
import { DEFAULT_PROFILES } from "../../src/pki/profiles.js";
import { escapeUnprintable } from "../../src/notifications/email.js";
import { available } from "../support/deps.js";
import { bmp, craftCsr, EXTENSION_VALUES, freshKeys, orgSubject, subject, TAGS, type Attribute } from "./crafted-csr.js";
import { makeCsr, generateKey, makeTempDir, opensslResult } from "./helpers.js";

const MTLS = DEFAULT_PROFILES[CertificateKind.MTLS_CLIENT];
const ORG = { organizationName: "Acme Bank", country: "GB" };
const BANK = { name: ORG.organizationName, country: ORG.country };
const hasOpenssl = await available("openssl");

async function refusal(pem: string): Promise<DomainError> {
  const error = await parseCsr(pem, MTLS, ORG).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error, "expected the CSR to be refused").toBeInstanceOf(DomainError);
  const e = error as DomainError;
  expect(e.code).toBe("BAD_USER_INPUT");
  // Never the raw bytes in a message: no control characters at all.
  expect(e.message).not.toMatch(/[\p{Cc}\u202e]/u);
  return e;
}

beforeEach(() => freshKeys());

describe("requested extensions (issue 11 finding 1)", () => {
  it.each([
    ["basicConstraints CA:TRUE, critical", { oid: "2.5.29.19", critical: true, value: EXTENSION_VALUES.caTrue }],
    ["basicConstraints CA:TRUE, not critical", { oid: "2.5.29.19", value: EXTENSION_VALUES.caTrue }],
    ["keyUsage keyCertSign and cRLSign", { oid: "2.5.29.15", critical: true, value: EXTENSION_VALUES.keyCertSign }],
  ])("should refuse a request for %s as CA_REQUESTED", async (_what, extension) => {
    const err = await refusal(craftCsr({ subject: orgSubject(BANK), extensions: [extension] }));
    expect(err.reason).toBe("CA_REQUESTED");
  });

  it("should refuse an unknown critical extension as UNSUPPORTED_CRITICAL_EXTENSION, and a critical one it would not honour", async () => {
    const unknown = await refusal(craftCsr({ subject: orgSubject(BANK), extensions: [{ oid: "1.3.6.1.4.1.99999.1", critical: true, value: EXTENSION_VALUES.opaque }] }));
    expect(unknown.reason).toBe("UNSUPPORTED_CRITICAL_EXTENSION");
    expect(unknown.message).toContain("1.3.6.1.4.1.99999.1");
    const san = await refusal(craftCsr({ subject: orgSubject(BANK), extensions: [{ oid: "2.5.29.17", critical: true, value: EXTENSION_VALUES.san }] }));
    expect(san.reason).toBe("UNSUPPORTED_CRITICAL_EXTENSION");
    expect(san.message).toContain("subjectAltName (2.5.29.17)");
  });

  it("should report the non-critical extensions it does not grant, in request order, and not those it honours", async () => {
    const parsed = await parseCsr(
      craftCsr({
        subject: orgSubject(BANK),
        extensions: [
          { oid: "1.3.6.1.4.1.99999.2", value: EXTENSION_VALUES.opaque },
          { oid: "2.5.29.19", critical: true, value: EXTENSION_VALUES.caFalse },
          { oid: "2.5.29.15", critical: true, value: EXTENSION_VALUES.digitalSignature },
          { oid: "2.5.29.17", value: EXTENSION_VALUES.san },
        ],
      }),
      MTLS,
      ORG,
    );
    expect(parsed.ignoredExtensions).toEqual(["1.3.6.1.4.1.99999.2", "2.5.29.17"]);
  });

  it("should refuse an extension requested twice as INVALID_CSR", async () => {
    const twice = { oid: "2.5.29.17", value: EXTENSION_VALUES.san };
    expect((await refusal(craftCsr({ subject: orgSubject(BANK), extensions: [twice, twice] }))).reason).toBe("INVALID_CSR");
  });
});

describe("subject policy (issue 11 finding 2, issue 12 finding 5)", () => {
  it("should re-encode the subject: C and fitting values as PrintableString, the rest as UTF8String, whatever the request used", async () => {
    const parsed = await parseCsr(
      craftCsr({
        subject: subject([
          ["C", TAGS.UTF8, "GB"],
          ["O", TAGS.UTF8, "Acme Bank"],
          ["L", TAGS.PRINTABLE, "London"],
          ["CN", TAGS.UTF8, "Zoë Müller"],
        ]),
      }),
      MTLS,
      ORG,
    );
    const attributes = parseName(parsed.subjectDer).map(([a]) => [a!.shortName, a!.tag, a!.text]);
    expect(attributes).toEqual([
      ["C", TAGS.PRINTABLE, "GB"],
      ["O", TAGS.PRINTABLE, "Acme Bank"],
      ["L", TAGS.PRINTABLE, "London"],
      ["CN", TAGS.UTF8, "Zoë Müller"],
    ]);
    expect(parsed.subject).toBe("CN=Zoë Müller,L=London,O=Acme Bank,C=GB");
  });

  it.each([
    ["NUL in CN", "Acme\u0000Client"],
    ["CR LF in CN", "Acme Client\r\nBcc: evil@example.com"],
    ["ESC in CN", "Acme \u001b[31mClient"],
    ["U+0001 in CN", "Acme\u0001Client"],
    ["a C1 control (U+0085) in CN", "Acme\u0085Client"],
    ["U+202E (right-to-left override) in CN", "Acme \u202eexe.tneilC"],
    ["U+2066 (left-to-right isolate) in CN", "Acme \u2066Client"],
    ["an unassigned code point in CN", "Acme \u{0378}Client"],
    ["a private-use character in CN", "Acme \ue000Client"],
  ])("should refuse %s as SUBJECT_CHARACTER_NOT_ALLOWED", async (_what, cn) => {
    const err = await refusal(craftCsr({ subject: orgSubject(BANK, cn) }));
    expect(err.reason).toBe("SUBJECT_CHARACTER_NOT_ALLOWED");
    expect(err.message).toMatch(/U\+[0-9A-F]{4}/);
  });

  it("should refuse a control character in L too", async () => {
    const err = await refusal(craftCsr({ subject: orgSubject(BANK, "Acme Client", [["L", TAGS.UTF8, "Lon\r\ndon"]]) }));
    expect(err.reason).toBe("SUBJECT_CHARACTER_NOT_ALLOWED");
  });

  it.each([
    ["a PrintableString holding @", "CN", TAGS.PRINTABLE, "pki@acme"],
    ["a PrintableString holding *", "CN", TAGS.PRINTABLE, "*.acme"],
    ["a PrintableString holding NUL", "CN", TAGS.PRINTABLE, "Acme\u0000"],
    ["a NumericString with letters", "CN", TAGS.NUMERIC, "12ab"],
    ["an IA5String with 8-bit bytes", "CN", TAGS.IA5, Uint8Array.of(0x41, 0xe9, 0x42)],
    ["a UTF8String that is not UTF-8", "CN", TAGS.UTF8, Uint8Array.of(0x41, 0xc3, 0x28)],
    ["a BMPString with a lone surrogate", "CN", TAGS.BMP, Uint8Array.of(0x00, 0x41, 0xd8, 0x00)],
  ] as const)("should refuse %s as SUBJECT_ENCODING_INVALID", async (_what, name, tag, value) => {
    const attrs: Attribute[] = [["C", TAGS.PRINTABLE, "GB"], ["O", TAGS.UTF8, "Acme Bank"], [name, tag, value]];
    const err = await refusal(craftCsr({ subject: subject(attrs) }));
    expect(err.reason).toBe("SUBJECT_ENCODING_INVALID");
  });

  it.each([
    ["a CN as BMPString", TAGS.BMP, bmp("Acme Client")],
    ["a CN as TeletexString", TAGS.T61, Buffer.from("Acme Client", "latin1")],
    ["a CN as UniversalString", TAGS.UNIVERSAL, Buffer.from("Acme Client", "utf16le").swap16().reduce<number[]>((a, b, i) => (i % 2 ? [...a, b] : [...a, 0, 0, b]), [])],
    ["a CN as VisibleString", TAGS.VISIBLE, Buffer.from("Acme Client")],
    ["a CN as IA5String", TAGS.IA5, Buffer.from("Acme Client")],
  ])("should refuse %s as SUBJECT_STRING_TYPE (not re-encoded: documented)", async (_what, tag, value) => {
    const err = await refusal(craftCsr({ subject: orgSubject(BANK, Uint8Array.from(value), [], tag) }));
    expect(err.reason).toBe("SUBJECT_STRING_TYPE");
    expect(err.message).toContain("PrintableString and UTF8String");
  });

  it.each([
    ["a 40 KB OU", [["OU", TAGS.UTF8, "x".repeat(40_000)]]],
    ["a 10 KB ST", [["ST", TAGS.UTF8, "y".repeat(10_000)]]],
    ["a 65-character L", [["L", TAGS.UTF8, "z".repeat(65)]]],
  ] as const)("should refuse %s as SUBJECT_VALUE_TOO_LONG", async (_what, extra) => {
    const err = await refusal(craftCsr({ subject: orgSubject(BANK, "Acme Client", [...extra]) }));
    expect(err.reason).toBe("SUBJECT_VALUE_TOO_LONG");
  });

  it("should accept four OUs and refuse five, or 1,000, and a second CN, as SUBJECT_ATTRIBUTE_REPEATED", async () => {
    const ous = (n: number): Attribute[] => Array.from({ length: n }, (_, i) => ["OU", TAGS.UTF8, `Unit ${i}`] as const);
    expect((await parseCsr(craftCsr({ subject: orgSubject(BANK, "Acme Client", ous(4)) }), MTLS, ORG)).subject).toContain("OU=Unit 3");
    freshKeys();
    expect((await refusal(craftCsr({ subject: orgSubject(BANK, "Acme Client", ous(5)) }))).reason).toBe("SUBJECT_ATTRIBUTE_REPEATED");
    expect((await refusal(craftCsr({ subject: orgSubject(BANK, "Acme Client", ous(1000)) }))).reason).toBe("SUBJECT_ATTRIBUTE_REPEATED");
    expect((await refusal(craftCsr({ subject: orgSubject(BANK, "Acme Client", [["CN", TAGS.UTF8, "Other"]]) }))).reason).toBe("SUBJECT_ATTRIBUTE_REPEATED");
  });

  it("should refuse a C that is not two capital letters", async () => {
    const err = await refusal(craftCsr({ subject: subject([["C", TAGS.PRINTABLE, "gb"], ["O", TAGS.UTF8, "Acme Bank"], ["CN", TAGS.UTF8, "Acme"]]) }));
    expect(err.reason).toBe("SUBJECT_MISMATCH");
  });
});

describe.skipIf(!hasOpenssl)("signature encodings, as strictly as openssl req -verify", () => {
  const rejectedByOpenssl = (pem: string) => {
    const result = opensslResult(["req", "-noout", "-verify"], { input: pem });
    return !result.ok || /verify failure|error/i.test(result.stdout + result.stderr);
  };

  it("should accept what openssl accepts: the crafted request with nothing wrong, both key types, and PSS with saltLength 32", async () => {
    for (const pem of [
      craftCsr({ subject: orgSubject(BANK) }),
      craftCsr({ subject: orgSubject(BANK), key: "rsa" }),
      craftCsr({ subject: orgSubject(BANK), key: "rsa", pss: { saltLength: Uint8Array.of(32) } }),
    ]) {
      expect(rejectedByOpenssl(pem)).toBe(false);
      await expect(parseCsr(pem, MTLS, ORG)).resolves.toBeDefined();
      freshKeys();
    }
  });

  it.each([
    ["a signature BIT STRING with unused bits", { signatureUnusedBits: 3 }, "p256"],
    ["an AlgorithmIdentifier with two parameters", { extraAlgorithmParameters: [Uint8Array.of(0x05, 0x00)] }, "rsa"],
    ["RSASSA-PSS with saltLength -1", { pss: { saltLength: Uint8Array.of(0xff) } }, "rsa"],
    ["RSASSA-PSS with trailerField 2", { pss: { saltLength: Uint8Array.of(32), trailerField: Uint8Array.of(2) } }, "rsa"],
  ] as const)("should refuse %s, which openssl req -verify rejects too, as INVALID_CSR", async (_what, options, key) => {
    const pem = craftCsr({ subject: orgSubject(BANK), key, ...options });
    expect(rejectedByOpenssl(pem)).toBe(true);
    const err = await refusal(pem);
    expect(["INVALID_CSR", "CSR_SIGNATURE_INVALID"]).toContain(err.reason);
  });

  it("should refuse an ECDSA AlgorithmIdentifier with parameters (RFC 5758 3.2: absent), which openssl tolerates as NULL", async () => {
    const err = await refusal(craftCsr({ subject: orgSubject(BANK), extraAlgorithmParameters: [Uint8Array.of(0x05, 0x00)] }));
    expect(err.reason).toBe("INVALID_CSR");
  });

  it("should refuse a request openssl makes with -addext basicConstraints=critical,CA:TRUE as CA_REQUESTED", async () => {
    const tmp = makeTempDir();
    try {
      const pem = makeCsr(generateKey(tmp.path, "p256"), "/C=GB/O=Acme Bank/CN=Acme CA", "-sha256", ["-addext", "basicConstraints=critical,CA:TRUE"]);
      expect((await refusal(pem)).reason).toBe("CA_REQUESTED");
    } finally {
      tmp.cleanup();
    }
  });
});

describe("mail text", () => {
  it("should never carry a raw control or override character: CR LF in a name does not become a line break", () => {
    const line = escapeUnprintable("Request: CN=Acme\r\nBcc: evil@example.com,O=\u202eAcme\u0000");
    expect(line).toBe("Request: CN=Acme\\u{000D}\\u{000A}Bcc: evil@example.com,O=\\u{202E}Acme\\u{0000}");
    expect(line).not.toMatch(/[\r\n\u202e\u0000]/);
  });
});
