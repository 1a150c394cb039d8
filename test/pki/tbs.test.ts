/**
 * The hand-written certificate encoder (src/pki/tbs.ts, behind issue.ts)
 * against the @peculiar/x509 path it replaced (library-path.ts), byte for
 * byte: for every generated input the TBSCertificate and signatureAlgorithm
 * are identical (ECDSA signatures are randomized, so whole certificates are
 * not compared; each fast signature is verified with node:crypto instead),
 * and openssl verifies and prints the fast certificates.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, sign as nodeSign, verify as nodeVerify, type KeyObject } from "node:crypto";
import {
  AsnEcSignatureFormatter,
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  CRLDistributionPointsExtension,
  ExtendedKeyUsageExtension,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
} from "@peculiar/x509";
import { CertificateKind, Environment } from "../../src/kernel/domain.js";
import { DomainError } from "../../src/kernel/errors.js";
import { certificateToPem } from "../../src/pki/bundle.js";
import { FileCaMaterialStore, loadOrCreateAuthority, type CertificateAuthority } from "../../src/pki/ca.js";
import { children, content, encodeOid, raw, readTlv, sequence, tlv } from "../../src/pki/der.js";
import {
  buildCertificate,
  certificateSubjectDer,
  issueCertificate,
  issueLeafCertificate,
  keyIdentifierOf,
  nameDer,
  newSerialHex,
  type CertificateSpec,
  type LeafSpec,
  type RawCertificateSpec,
} from "../../src/pki/issue.js";
import { FileKeyStore } from "../../src/pki/keystore/index.js";
import { DEFAULT_PROFILES } from "../../src/pki/profiles.js";
import { analyzeKey, parseSpki, subjectKeyIdentifier } from "../../src/pki/spki.js";
import {
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  crlDistributionPointsExtension,
  ecdsaSignatureToDer,
  encodeSerialNumber,
  extendedKeyUsageExtension,
  keyUsageExtension,
  subjectAltNameExtension,
  subjectKeyIdentifierExtension,
  type SubjectAltName,
} from "../../src/pki/tbs.js";
import { available } from "../support/deps.js";
import { makeTempDir, openssl, opensslResult, writeFile } from "./helpers.js";
import { buildCertificateWithLibrary, issueCertificateWithLibrary, issueLeafCertificateWithLibrary } from "./library-path.js";

const hasOpenssl = await available("openssl");

// ---- inputs ---------------------------------------------------------------------------------

type SubjectKey = "EC-P256" | "EC-P384" | "RSA-2048" | "RSA-3072";

function makeSpki(kind: SubjectKey): Uint8Array {
  const pair =
    kind === "EC-P256" || kind === "EC-P384"
      ? generateKeyPairSync("ec", { namedCurve: kind === "EC-P256" ? "P-256" : "P-384" })
      : generateKeyPairSync("rsa", { modulusLength: kind === "RSA-2048" ? 2048 : 3072 });
  return new Uint8Array(pair.publicKey.export({ type: "spki", format: "der" }));
}

const latin1 = (tag: number, s: string) => tlv(tag, Buffer.from(s, "latin1"));
const bmp = (s: string) => tlv(0x1e, Buffer.from(s, "utf16le").swap16());
const atv = (oid: string, value: Uint8Array) => sequence(encodeOid(oid), value);

const SUBJECTS: Record<string, Uint8Array> = {
  printable: nameDer([
    ["C", "GB"],
    ["O", "Acme Bank"],
    ["OU", "Payments"],
    ["CN", "Acme Client"],
  ]),
  utf8: nameDer([
    ["C", "DE"],
    ["O", "Société Générale"],
    ["CN", "Zoë Müller – Zahlungsverkehr"],
  ]),
  // Over 127 octets: the Name and everything around it take long-form lengths.
  "long printable CN": nameDer([
    ["C", "GB"],
    ["ST", "Greater London"],
    ["L", "London"],
    ["O", "Acme Bank"],
    ["OU", "Payments"],
    ["CN", "x".repeat(64)],
  ]),
  "long UTF8 CN": nameDer([
    ["C", "GB"],
    ["O", "Acme Bank"],
    ["CN", "€".repeat(64)],
  ]),
  // String types nameDer never writes, and a multi-valued RDN: copied as they are.
  "Teletex, BMP, IA5, multi-valued RDN": sequence(
    tlv(0x31, atv("2.5.4.6", latin1(0x13, "GB"))),
    tlv(0x31, atv("2.5.4.10", latin1(0x14, "Acme Bank"))),
    tlv(0x31, atv("2.5.4.3", bmp("Zoë")), atv("1.2.840.113549.1.9.1", latin1(0x16, "pki@acme.example"))),
  ),
};

/** Serials our policy accepts: random, shortest, top nibble 7, top nibble 0 at 20 octets, largest. */
const SERIALS = (): string[] => [newSerialHex(), "01", "7f", "0f" + randomBytes(19).toString("hex"), "7f" + "ff".repeat(19)];

/** [label, notBefore, notAfter]: UTCTime with milliseconds, across 2050, GeneralizedTime, and the first UTCTime year. */
const LEAF_DATES: Array<[string, Date, Date]> = [
  ["UTCTime", new Date("2045-03-04T05:06:07.890Z"), new Date("2046-03-04T05:06:07.123Z")],
  ["across 2050", new Date("2049-12-31T23:59:59.999Z"), new Date("2050-01-01T00:00:00.000Z")],
  ["GeneralizedTime", new Date("2050-01-01T00:00:00.000Z"), new Date("2052-04-05T00:00:00.000Z")],
  ["1950", new Date("1950-01-01T00:00:00.000Z"), new Date("1950-12-31T23:59:59.000Z")],
];

const SANS: Array<readonly SubjectAltName[] | undefined> = [
  undefined,
  [
    { type: "dns", value: "localhost" },
    { type: "ip", value: "127.0.0.1" },
  ],
  [
    { type: "dns", value: "*.kms.example" },
    { type: "ip", value: "::1" },
    { type: "ip", value: "2001:db8::8a2e:370:7334" },
    { type: "ip", value: "fe80::" },
    { type: "ip", value: "1:2:3:4:5:6:7:8" },
    { type: "ip", value: "10.0.0.255" },
  ],
];

const USAGES: Array<{ keyUsage: string[]; extendedKeyUsage: string[] }> = [
  { keyUsage: ["digitalSignature"], extendedKeyUsage: ["serverAuth"] },
  { keyUsage: ["digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement"], extendedKeyUsage: [] },
  { keyUsage: ["keyAgreement"], extendedKeyUsage: ["clientAuth", "serverAuth", "emailProtection", "1.3.6.1.4.1.311.10.3.12"] },
];

// ---- certificate parts ------------------------------------------------------------------------

interface Parts {
  tbs: Buffer;
  algorithm: Buffer;
  signature: Buffer;
}

/** Certificate ::= SEQUENCE { tbs, algorithm, BIT STRING }, checking that nothing trails it and the BIT STRING has 0 unused bits. */
function partsOf(der: Uint8Array): Parts {
  const top = readTlv(der, 0);
  expect(top.end).toBe(der.length);
  const [tbs, algorithm, signature, ...rest] = children(der, top);
  expect(rest).toHaveLength(0);
  expect(signature!.tag).toBe(0x03);
  const bits = content(der, signature!);
  expect(bits[0]).toBe(0);
  return { tbs: Buffer.from(raw(der, tbs!)), algorithm: Buffer.from(raw(der, algorithm!)), signature: Buffer.from(bits.subarray(1)) };
}

function verifiesWith(issuerKey: KeyObject, parts: Parts): boolean {
  const hash = issuerKey.asymmetricKeyType === "ec" && issuerKey.asymmetricKeyDetails?.namedCurve === "secp384r1" ? "sha384" : "sha256";
  const key = issuerKey.asymmetricKeyType === "ec" ? { key: issuerKey, dsaEncoding: "der" as const } : issuerKey;
  return nodeVerify(hash, parts.tbs, key, parts.signature);
}

/** One fast certificate against the oracle's for the same inputs. */
function expectSameTbs(fast: Uint8Array, library: Uint8Array, issuerKey: KeyObject, label: string): void {
  const a = partsOf(fast);
  const b = partsOf(library);
  if (!a.tbs.equals(b.tbs)) {
    throw new Error(`${label}: TBSCertificate differs\nfast:    ${a.tbs.toString("hex")}\nlibrary: ${b.tbs.toString("hex")}`);
  }
  expect(a.algorithm.equals(b.algorithm), label).toBe(true);
  expect(verifiesWith(issuerKey, a), `${label}: fast signature`).toBe(true);
}

/** Runs `jobs` at most `width` at a time (the CA signs concurrently in production, too). */
async function inBatches<T>(jobs: Array<() => Promise<T>>, width = 8): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += width) out.push(...(await Promise.all(jobs.slice(i, i + width).map((j) => j()))));
  return out;
}

const rejection = (p: Promise<unknown>): Promise<unknown> => p.then(
  () => new Error("resolved"),
  (e: unknown) => e,
);

/**
 * A leaf as the CA issues it, without the lint before signing: these cases
 * compare the encoder with the library on inputs the lint would refuse
 * (short serials, T61/BMP subjects), which is the encoder's business, not the policy's.
 */
const encodeLeaf = (ca: CertificateAuthority, spec: Omit<LeafSpec, "issuer" | "crlUrl">): Promise<Uint8Array> =>
  issueLeafCertificate({ ...spec, issuer: ca.issuer, crlUrl: ca.crlUrl, authorityInfoAccess: ca.authorityInfoAccess });

// ---- the suite --------------------------------------------------------------------------------

describe("hand-written certificate encoder", () => {
  const tmp = makeTempDir("kp-tbs-");
  let keyStore: FileKeyStore;
  const cas: Record<"EC-P256" | "RSA-3072", CertificateAuthority> = {} as Record<"EC-P256" | "RSA-3072", CertificateAuthority>;
  const issuerKeys = new Map<CertificateAuthority, KeyObject>();
  const keys = {} as Record<SubjectKey, Uint8Array>;
  // CAs made "in 2045" (root to 2065, issuing to 2055), so leaves can lie on both sides of 2050.
  const caNow = new Date("2045-01-01T00:00:00Z");

  beforeAll(async () => {
    keyStore = new FileKeyStore({ dir: `${tmp.path}/keys` });
    const material = new FileCaMaterialStore(`${tmp.path}/material`);
    const common = { keyStore, material, now: caNow, organizationName: "KeyPortal", crlBaseUrl: "http://127.0.0.1:4000/crl" };
    cas["EC-P256"] = await loadOrCreateAuthority({ ...common, environment: Environment.MTF, keyAlgorithm: "EC-P256" });
    cas["RSA-3072"] = await loadOrCreateAuthority({ ...common, environment: Environment.PRODUCTION, keyAlgorithm: "RSA-3072" });
    for (const ca of Object.values(cas)) {
      issuerKeys.set(ca, createPublicKey({ key: Buffer.from(ca.issuing.publicKey.rawData), format: "der", type: "spki" }));
    }
    for (const kind of ["EC-P256", "EC-P384", "RSA-2048", "RSA-3072"] as const) keys[kind] = makeSpki(kind);
  });

  afterAll(async () => {
    await keyStore?.close();
    tmp.cleanup();
  });

  describe("differential: CertificateAuthority.issue against the library path", () => {
    const kinds = [CertificateKind.MTLS_CLIENT, CertificateKind.SIGNING, CertificateKind.ENCRYPTION];
    it.each((["EC-P256", "RSA-3072"] as const).flatMap((ca) => kinds.map((kind) => [ca, kind] as const)))(
      "%s CA, %s: every subject key × serial × validity × subject gives the library's TBSCertificate",
      async (caKey, kind) => {
        const ca = cas[caKey];
        const profile = DEFAULT_PROFILES[kind];
        let compared = 0;
        let refused = 0;
        const jobs: Array<() => Promise<void>> = [];
        for (const [keyKind, spki] of Object.entries(keys)) {
          for (const serialHex of SERIALS()) {
            for (const [dateLabel, notBefore, notAfter] of LEAF_DATES) {
              for (const [subjectLabel, subjectDer] of Object.entries(SUBJECTS)) {
                const label = `${caKey}/${kind}/${keyKind}/${serialHex}/${dateLabel}/${subjectLabel}`;
                const spec = { profile, subjectDer, spki, serialHex, notBefore, notAfter };
                jobs.push(async () => {
                  if (!profile.allowedKeyAlgorithms.includes(keyKind)) {
                    // The profile refuses the key before any encoding, on either path.
                    const err = await rejection(encodeLeaf(ca, spec));
                    expect(err).toBeInstanceOf(DomainError);
                    expect((err as DomainError).reason).toBe("UNSUPPORTED_KEY_ALGORITHM");
                    refused++;
                    return;
                  }
                  const fast = await encodeLeaf(ca, spec);
                  const library = await issueLeafCertificateWithLibrary({ ...spec, issuer: ca.issuer, crlUrl: ca.crlUrl, authorityInfoAccess: ca.authorityInfoAccess });
                  expectSameTbs(fast, library, issuerKeys.get(ca)!, label);
                  compared++;
                });
              }
            }
          }
        }
        await inBatches(jobs);
        const combinations = Object.keys(keys).length * SERIALS().length * LEAF_DATES.length * Object.keys(SUBJECTS).length;
        expect(compared + refused).toBe(combinations);
        expect(compared).toBe(kind === CertificateKind.ENCRYPTION ? combinations / 2 : combinations);
      },
    );

    it.each(["EC-P256", "RSA-3072"] as const)(
      "%s CA: issueCertificate with and without subjectAltName and CRL URL, for several usage sets, gives the library's TBSCertificate",
      async (caKey) => {
        const ca = cas[caKey];
        const jobs: Array<() => Promise<void>> = [];
        for (const [keyKind, spki] of Object.entries(keys)) {
          for (const [sanIndex, subjectAltNames] of SANS.entries()) {
            for (const crlUrl of [undefined, ca.crlUrl]) {
              for (const [usageIndex, usage] of USAGES.entries()) {
                for (const [dateLabel, notBefore, notAfter] of [LEAF_DATES[0]!, LEAF_DATES[2]!]) {
                  const spec: CertificateSpec = {
                    subject: SUBJECTS.printable!,
                    spki,
                    serialHex: newSerialHex(),
                    notBefore,
                    notAfter,
                    ...usage,
                    subjectAltNames,
                    crlUrl,
                    // The AIA rides along with the CRL URL, as for every certificate of ours.
                    ...(crlUrl ? { authorityInfoAccess: ca.authorityInfoAccess } : {}),
                    issuer: ca.issuer,
                  };
                  const label = `${caKey}/${keyKind}/san${sanIndex}/crl:${crlUrl !== undefined}/usage${usageIndex}/${dateLabel}`;
                  jobs.push(async () => expectSameTbs(await issueCertificate(spec), await issueCertificateWithLibrary(spec), issuerKeys.get(ca)!, label));
                }
              }
            }
          }
        }
        await inBatches(jobs);
        expect(jobs).toHaveLength(4 * SANS.length * 2 * USAGES.length * 2);
      },
    );

    it.each(["EC-P256", "RSA-3072"] as const)("%s: CA certificates (self-signed root, issuing CAs with path lengths) match the library's", async (caKey) => {
      const env = caKey === "EC-P256" ? "mtf" : "production";
      const root = (await keyStore.findKeyPair(`ca-${env}-root`))!;
      const rootSpki = new Uint8Array(await keyStore.crypto.subtle.exportKey("spki", root.publicKey));
      const rootKey = createPublicKey({ key: Buffer.from(rootSpki), format: "der", type: "spki" });
      const rootName = nameDer([
        ["O", "KeyPortal"],
        ["CN", "Differential Root"],
      ]);
      const base = { spki: rootSpki, keyUsage: ["keyCertSign", "cRLSign"], extendedKeyUsage: [], signingKey: root.privateKey, crypto: keyStore.crypto, signer: keyStore };
      const specs: Array<[string, RawCertificateSpec]> = [
        ["root", { ...base, subject: rootName, issuer: rootName, serialHex: newSerialHex(), notBefore: caNow, notAfter: new Date("2065-01-01T00:00:00Z"), ca: {} }],
      ];
      for (const pathLength of [0, 1, 127, 128, 255, 256, 65_536]) {
        specs.push([
          `issuing, pathLength ${pathLength}`,
          {
            ...base,
            spki: keys["EC-P384"],
            subject: nameDer([
              ["O", "KeyPortal"],
              ["CN", `Issuing ${pathLength}`],
            ]),
            issuer: rootName,
            serialHex: newSerialHex(),
            notBefore: new Date("2049-06-01T00:00:00Z"),
            notAfter: new Date("2059-06-01T00:00:00Z"),
            ca: { pathLength },
            authorityKeyId: Buffer.from(subjectKeyIdentifier(rootSpki)).toString("hex"),
            crlUrl: "http://127.0.0.1:4000/crl/root.crl",
          },
        ]);
      }
      for (const [label, spec] of specs) {
        expectSameTbs(await buildCertificate(spec), await buildCertificateWithLibrary(spec), rootKey, `${caKey} ${label}`);
      }
      // The hierarchy loadOrCreateAuthority made (with buildCertificate) names its issuer as the library would.
      const ca = cas[caKey];
      expect(Buffer.from(certificateSubjectDer(new Uint8Array(ca.root.rawData))).equals(Buffer.from(ca.issuing.issuerName.toArrayBuffer()))).toBe(true);
      expect(await ca.issuing.verify({ publicKey: ca.root.publicKey, signatureOnly: true })).toBe(true);
      expect(await ca.root.verify({ publicKey: ca.root.publicKey, signatureOnly: true })).toBe(true);
    });
  });

  describe("extensions and fields, one by one against the library's own encoders", () => {
    const der = (e: { rawData: ArrayBuffer }) => Buffer.from(e.rawData);
    const names = ["digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign"];

    it("keyUsage: all 128 combinations of the seven bits, trimmed the same way", () => {
      for (let mask = 0; mask < 128; mask++) {
        const chosen = names.filter((_, i) => mask & (1 << i));
        expect(Buffer.from(keyUsageExtension(chosen, true)).toString("hex"), chosen.join(",")).toBe(der(new KeyUsagesExtension(mask, true)).toString("hex"));
      }
      // contentCommitment is nonRepudiation's newer name (X.509 2005).
      expect(Buffer.from(keyUsageExtension(["contentCommitment"], false))).toEqual(Buffer.from(keyUsageExtension(["nonRepudiation"], false)));
      expect(() => keyUsageExtension(["keyCertSign"], false)).toThrow(/reserved for CA/);
      expect(() => keyUsageExtension(["encipherOnly"], true)).toThrow(/unknown key usage/);
    });

    it("basicConstraints: CA:FALSE, CA:TRUE, and path lengths that need one, two and three octets", () => {
      expect(der(new BasicConstraintsExtension(false, undefined, true)).equals(Buffer.from(basicConstraintsExtension()))).toBe(true);
      expect(der(new BasicConstraintsExtension(true, undefined, true)).equals(Buffer.from(basicConstraintsExtension({})))).toBe(true);
      for (const n of [0, 1, 127, 128, 255, 256, 32_767, 32_768, 65_536]) {
        expect(der(new BasicConstraintsExtension(true, n, true)).toString("hex"), String(n)).toBe(Buffer.from(basicConstraintsExtension({ pathLength: n })).toString("hex"));
      }
    });

    it("extKeyUsage, subjectKeyIdentifier, authorityKeyIdentifier and cRLDistributionPoints", () => {
      const oids = ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1", "1.3.6.1.4.1.311.10.3.12", "2.999.1"];
      expect(Buffer.from(extendedKeyUsageExtension(["clientAuth", "serverAuth", "1.3.6.1.4.1.311.10.3.12", "2.999.1"]))).toEqual(
        der(new ExtendedKeyUsageExtension(oids, false)),
      );
      expect(() => extendedKeyUsageExtension(["anyPurpose"])).toThrow(/unknown extended key usage/);
      const id = randomBytes(20);
      expect(Buffer.from(subjectKeyIdentifierExtension(id))).toEqual(der(new SubjectKeyIdentifierExtension(id.toString("hex"), false)));
      expect(Buffer.from(authorityKeyIdentifierExtension(id))).toEqual(der(new AuthorityKeyIdentifierExtension(id.toString("hex"), false)));
      for (const url of ["http://127.0.0.1:4000/crl/MTF.crl", `http://crl.example/${"p".repeat(300)}.crl`]) {
        expect(Buffer.from(crlDistributionPointsExtension(url))).toEqual(der(new CRLDistributionPointsExtension([url], false)));
      }
      expect(() => crlDistributionPointsExtension("http://crl.example/ü")).toThrow(/ASCII/);
    });

    it("subjectAltName: DNS names, IPv4 and IPv6 (compressed, full, unspecified), and embedded IPv4 in IPv6", () => {
      for (const names of SANS.slice(1) as SubjectAltName[][]) {
        expect(Buffer.from(subjectAltNameExtension(names))).toEqual(der(new SubjectAlternativeNameExtension(names, false)));
      }
      expect(Buffer.from(subjectAltNameExtension([{ type: "ip", value: "::" }]))).toEqual(
        der(new SubjectAlternativeNameExtension([{ type: "ip", value: "::" }], false)),
      );
      // The library reads "192.0.2.1" in an IPv6 address as one hex group; these are the RFC 4291 2.5.5 octets.
      const octetsOf = (value: string) => {
        const ext = subjectAltNameExtension([{ type: "ip", value }]);
        return Buffer.from(ext.subarray(ext.length - 16)).toString("hex");
      };
      expect(octetsOf("::ffff:192.0.2.1")).toBe("00000000000000000000ffffc0000201");
      expect(octetsOf("64:ff9b::192.0.2.33")).toBe("0064ff9b0000000000000000c0000221");
      expect(octetsOf("1:2:3:4:5:6:192.0.2.33")).toBe("000100020003000400050006c0000221");
      for (const bad of ["1.2.3", "256.1.1.1", "fe80::1%eth0", "10.0.0.0/8", "::g", "localhost"]) {
        expect(() => subjectAltNameExtension([{ type: "ip", value: bad }]), bad).toThrow(/IP address/);
      }
      expect(() => subjectAltNameExtension([{ type: "dns", value: "bücher.example" }])).toThrow(/ASCII/);
    });

    it("serialNumber: positive INTEGER, a 0x00 before a set top bit and no redundant leading zeros, as the library writes it", async () => {
      const ca = cas["EC-P256"];
      for (const serialHex of ["01", "7f", "80", "ff", "00ff", "0080", "000001", "8000000000000000", "ff".repeat(20), "0f" + "ff".repeat(19)]) {
        const library = await buildCertificateWithLibrary({
          subject: SUBJECTS.printable!,
          issuer: certificateSubjectDer(new Uint8Array(ca.issuing.rawData)),
          spki: keys["EC-P256"],
          serialHex,
          notBefore: LEAF_DATES[0]![1],
          notAfter: LEAF_DATES[0]![2],
          keyUsage: ["digitalSignature"],
          extendedKeyUsage: [],
          signingKey: ca.issuer.keys.privateKey,
          crypto: ca.issuer.crypto,
          signer: ca.issuer.signer,
        });
        const tbs = partsOf(library).tbs;
        const serialField = raw(tbs, children(tbs, readTlv(tbs, 0))[1]!);
        expect(Buffer.from(encodeSerialNumber(serialHex)).toString("hex"), serialHex).toBe(Buffer.from(serialField).toString("hex"));
      }
    });

    it("ECDSA: r||s to Ecdsa-Sig-Value like the library's formatter, for padded, zero-led and full-width integers", () => {
      const formatter = new AsnEcSignatureFormatter();
      for (const [curve, size] of [
        ["P-256", 32],
        ["P-384", 48],
      ] as const) {
        const patterns = [
          (n: number) => Buffer.alloc(n, 0x7f),
          (n: number) => Buffer.alloc(n, 0xff), // top bit set: 0x00 prefix
          (n: number) => Buffer.concat([Buffer.alloc(1), randomBytes(n - 1)]), // leading zero octet dropped
          (n: number) => Buffer.concat([Buffer.alloc(3), Buffer.from([0x80]), randomBytes(n - 4)]), // zeros, then a top bit
          (n: number) => Buffer.concat([Buffer.alloc(n - 1), Buffer.from([1])]),
        ];
        for (const r of patterns) {
          for (const s of patterns) {
            const rs = new Uint8Array(Buffer.concat([r(size), s(size)]));
            const expected = Buffer.from(formatter.toAsnSignature({ name: "ECDSA", namedCurve: curve } as Algorithm, rs.buffer)!);
            expect(Buffer.from(ecdsaSignatureToDer(rs, size))).toEqual(expected);
          }
        }
        expect(() => ecdsaSignatureToDer(new Uint8Array(2 * size - 1), size)).toThrow(/octets/);
      }
    });

    it("ECDSA: 400 real P1363 signatures converted to DER verify with node:crypto (about half have a top bit to pad)", () => {
      for (const curve of ["P-256", "P-384"] as const) {
        const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: curve });
        const size = curve === "P-256" ? 32 : 48;
        for (let i = 0; i < 200; i++) {
          const data = randomBytes(64);
          const p1363 = nodeSign("sha256", data, { key: privateKey, dsaEncoding: "ieee-p1363" });
          expect(nodeVerify("sha256", data, { key: publicKey, dsaEncoding: "der" }, ecdsaSignatureToDer(new Uint8Array(p1363), size))).toBe(true);
        }
      }
    });

    it("reads SPKIs with the DER walker as the schema library does: labels, key identifiers", () => {
      const more: Uint8Array[] = [
        new Uint8Array(generateKeyPairSync("ec", { namedCurve: "P-521" }).publicKey.export({ type: "spki", format: "der" })),
        new Uint8Array(generateKeyPairSync("ec", { namedCurve: "secp256k1" }).publicKey.export({ type: "spki", format: "der" })),
        new Uint8Array(generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "der" })),
        new Uint8Array(generateKeyPairSync("rsa-pss", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "der" })),
        new Uint8Array(generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 3 }).publicKey.export({ type: "spki", format: "der" })),
      ];
      const labels = [...Object.values(keys), ...more].map((spki) => {
        const viaSchema = Buffer.from(parseSpki(spki).subjectPublicKey);
        expect(Buffer.from(subjectKeyIdentifier(spki))).toEqual(createHash("sha1").update(viaSchema).digest());
        return analyzeKey(spki).label;
      });
      expect(labels).toEqual(["EC-P256", "EC-P384", "RSA-2048", "RSA-3072", "EC-P521", "EC-secp256k1", "Ed25519", "RSA-PSS-2048", "RSA-2048"]);
      expect(analyzeKey(more[4]!)).toMatchObject({ family: "RSA", exponent: 3n });
      expect(() => analyzeKey(new Uint8Array([...keys["EC-P256"], 0]))).toThrow();
    });
  });

  it("newSerialHex: 20,000 distinct canonical 16-octet positive serials from the pooled random bytes", () => {
    const serials = new Set(Array.from({ length: 20_000 }, () => newSerialHex()));
    expect(serials.size).toBe(20_000);
    for (const serial of serials) {
      expect(serial).toMatch(/^[0-7][0-9a-f]{31}$/);
      expect(serial.startsWith("00")).toBe(false);
    }
  });

  describe("refusals", () => {
    const spec = (overrides: Partial<CertificateSpec>): CertificateSpec => ({
      subject: SUBJECTS.printable!,
      spki: keys["EC-P256"],
      serialHex: newSerialHex(),
      notBefore: LEAF_DATES[0]![1],
      notAfter: LEAF_DATES[0]![2],
      keyUsage: ["digitalSignature"],
      extendedKeyUsage: [],
      issuer: cas["EC-P256"].issuer,
      ...overrides,
    });

    it("refuses serials that are not canonical positive hex of 1-20 octets, as a rejected promise", async () => {
      for (const serialHex of ["", "00", "0001", "80", "ff01", "AB", "abc", "7f" + "00".repeat(20)]) {
        const pending = issueCertificate(spec({ serialHex }));
        expect(await rejection(pending), serialHex).toBeInstanceOf(Error);
        expect(String(await rejection(pending))).toMatch(/serial/);
      }
    });

    it("refuses validity the Validity field cannot carry, or that ends before it starts or after the CA", async () => {
      await expect(issueCertificate(spec({ notBefore: new Date("1949-12-31T23:59:59Z") }))).rejects.toThrow(/outside 1950-9999/);
      await expect(issueCertificate(spec({ notBefore: new Date(Number.NaN) }))).rejects.toThrow(/outside 1950-9999/);
      await expect(issueCertificate(spec({ notAfter: LEAF_DATES[0]![1] }))).rejects.toThrow(/notAfter must be after notBefore/);
      const late = await rejection(issueCertificate(spec({ notAfter: new Date("2055-01-01T00:00:01Z") })));
      expect((late as DomainError).reason).toBe("VALIDITY_EXCEEDS_CA");
    });

    it("refuses a subject that is not one well-formed DER Name, and CA-only or unknown usages on an end-entity certificate", async () => {
      const printable = SUBJECTS.printable!;
      for (const subject of [new Uint8Array([...printable, 0]), printable.subarray(0, printable.length - 1), sequence(tlv(0x31)), sequence(sequence())]) {
        const err = await rejection(issueCertificate(spec({ subject })));
        expect((err as DomainError).reason).toBe("SUBJECT_MISMATCH");
      }
      await expect(issueCertificate(spec({ keyUsage: ["cRLSign"] }))).rejects.toThrow(/reserved for CA/);
      await expect(issueCertificate(spec({ extendedKeyUsage: ["clientAuth,serverAuth"] }))).rejects.toThrow(/unknown extended key usage/);
      await expect(issueCertificate(spec({ subjectAltNames: [{ type: "ip", value: "10.0.0.0/8" }] }))).rejects.toThrow(/IP address/);
    });

    it("does not reuse an issuer's cached parts once its IssuerRef points at another CA", async () => {
      const ref = { ...cas["EC-P256"].issuer };
      const first = partsOf(await issueCertificate(spec({ issuer: ref })));
      Object.assign(ref, cas["RSA-3072"].issuer);
      const second = partsOf(await issueCertificate(spec({ issuer: ref })));
      expect(first.algorithm.equals(second.algorithm)).toBe(false);
      expect(verifiesWith(issuerKeys.get(cas["RSA-3072"])!, second)).toBe(true);
      expect(keyIdentifierOf(cas["RSA-3072"].issuing)).not.toBe(keyIdentifierOf(cas["EC-P256"].issuing));
    });
  });

  describe.skipIf(!hasOpenssl)("openssl reads and verifies the fast certificates", () => {
    it.each(["EC-P256", "RSA-3072"] as const)("%s CA: every kind and key, before and after 2050, with SANs: openssl verify -x509_strict OK, x509 -text parses", async (caKey) => {
      const ca = cas[caKey];
      const dir = makeTempDir("kp-tbs-openssl-");
      try {
        const root = writeFile(dir.path, "root.pem", certificateToPem(new Uint8Array(ca.root.rawData)));
        const issuing = writeFile(dir.path, "issuing.pem", certificateToPem(new Uint8Array(ca.issuing.rawData)));
        for (const [dateLabel, notBefore, notAfter] of [LEAF_DATES[0]!, LEAF_DATES[2]!]) {
          const files: Array<{ path: string; kind: string; san: boolean }> = [];
          for (const kind of [CertificateKind.MTLS_CLIENT, CertificateKind.SIGNING, CertificateKind.ENCRYPTION]) {
            const profile = DEFAULT_PROFILES[kind];
            for (const [keyKind, spki] of Object.entries(keys)) {
              if (!profile.allowedKeyAlgorithms.includes(keyKind)) continue;
              const subjectDer = SUBJECTS["long UTF8 CN"]!;
              const der = await ca.issue({ profile, subjectDer, spki, serialHex: newSerialHex(), notBefore, notAfter });
              files.push({ path: writeFile(dir.path, `${kind}-${keyKind}.pem`, certificateToPem(der)), kind, san: false });
            }
          }
          const server = await issueCertificate({
            subject: SUBJECTS["Teletex, BMP, IA5, multi-valued RDN"]!,
            spki: keys["EC-P384"],
            serialHex: newSerialHex(),
            notBefore,
            notAfter,
            keyUsage: ["digitalSignature"],
            extendedKeyUsage: ["serverAuth"],
            subjectAltNames: SANS[2],
            crlUrl: ca.crlUrl,
            issuer: ca.issuer,
          });
          files.push({ path: writeFile(dir.path, "server.pem", certificateToPem(server)), kind: "server", san: true });

          const attime = String(Math.floor(notBefore.getTime() / 1000) + 86_400);
          const result = opensslResult(["verify", "-x509_strict", "-attime", attime, "-CAfile", root, "-untrusted", issuing, ...files.map((f) => f.path)]);
          expect(result.stdout + result.stderr, dateLabel).not.toMatch(/error/i);
          for (const f of files) expect(result.stdout).toContain(`${f.path}: OK`);

          for (const f of files) {
            const text = openssl(["x509", "-in", f.path, "-noout", "-text"]);
            expect(text).toContain(`Not After : ${notAfter.toUTCString().slice(8, 11)}`);
            expect(text).toContain(String(notAfter.getUTCFullYear()) + " GMT");
            expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE\n/);
            expect(text).toContain("X509v3 Subject Key Identifier");
            expect(text).toContain("X509v3 Authority Key Identifier");
            expect(text).toContain(`URI:${ca.crlUrl}`);
            expect(text).toContain(caKey === "EC-P256" ? "ecdsa-with-SHA256" : "sha256WithRSAEncryption");
            if (f.san) {
              expect(text).toContain("DNS:*.kms.example, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:8A2E:370:7334");
            }
          }
          // Parsed by the library too, where the validity comes back to the second.
          const parsed = new X509Certificate(certificateToPem(server));
          expect(parsed.notAfter.getTime()).toBe(Math.floor(notAfter.getTime() / 1000) * 1000);
        }
      } finally {
        dir.cleanup();
      }
    });
  });
});
