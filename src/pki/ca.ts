/**
 * An environment's certificate authority: a self-signed root and an issuing
 * CA below it (pathlen 0), created once and loaded afterwards. The keys live
 * in a KeyStore; the certificates in a CaMaterialStore (the app's is the
 * database), so every instance of the app signs under the same hierarchy.
 * MTF and PRODUCTION are separate hierarchies with separate keys.
 */
import "reflect-metadata";
import { promises as fs, constants as fsConstants } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { X509Certificate } from "@peculiar/x509";
import { Environment } from "../kernel/domain.js";
import {
  buildCertificate,
  certificateSubjectDer,
  issueLeafCertificate,
  keyIdentifierOf,
  nameDer,
  newSerialHex,
  type AuthorityInfoAccess,
  type IssuerRef,
  type LeafSpec,
} from "./issue.js";
import { buildCrl, type CrlInput } from "./crl.js";
import { certificateToPem } from "./bundle.js";
import type { KeyStore } from "./keystore/index.js";

export interface CaMaterialStore {
  get(name: string): Promise<string | null>;
  /** Stores `pem` under `name` unless something is there already; returns what is stored (possibly another process's value). */
  putIfAbsent(name: string, pem: string): Promise<string>;
}

/** CA certificates as files in a directory (tests, single-host installs). */
export class FileCaMaterialStore implements CaMaterialStore {
  constructor(private readonly dir: string) {}

  private pathOf(name: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new Error(`invalid material name ${JSON.stringify(name)}`);
    return join(this.dir, `${name}.pem`);
  }

  async get(name: string): Promise<string | null> {
    try {
      return await fs.readFile(this.pathOf(name), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
  }

  async putIfAbsent(name: string, pem: string): Promise<string> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const finalPath = this.pathOf(name);
    const tempPath = join(this.dir, `.${name}.${randomBytes(8).toString("hex")}.tmp`);
    await fs.writeFile(tempPath, pem, { flag: "wx", mode: 0o644 });
    try {
      // link(2) is an exclusive create: of two racing writers, exactly one wins.
      await fs.link(tempPath, finalPath);
      return pem;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      return fs.readFile(finalPath, { encoding: "utf8", flag: fsConstants.O_RDONLY });
    } finally {
      await fs.unlink(tempPath).catch(() => undefined);
    }
  }
}

export type CaKeyAlgorithm = "EC-P256" | "RSA-3072";

/** The organization the CA and KMS certificates name (the bootstrap KMS organization's country). */
export const KMS_ORGANIZATION = { name: "KeyPortal", country: "US" } as const;

/** Where an environment's CA publishes, under the public URL (http/ca.routes.ts, crl.routes.ts, ocsp.routes.ts serve them). */
export interface AuthorityUrls {
  /** The issuing CA's CRL (leaves' cRLDistributionPoints). */
  crl: string;
  /** The root's CRL (the issuing CA's cRLDistributionPoints). */
  rootCrl: string;
  /** The issuing CA's certificate, DER (leaves' AIA caIssuers). */
  issuingCertificate: string;
  /** The root certificate, DER (the issuing CA's AIA caIssuers). */
  rootCertificate: string;
  /** The OCSP responder for the issuing CA's certificates (leaves' AIA ocsp). */
  ocsp: string;
}

export function authorityUrls(publicUrl: string, environment: Environment): AuthorityUrls {
  const base = publicUrl.replace(/\/+$/, "");
  return {
    crl: `${base}/crl/${environment}.crl`,
    rootCrl: `${base}/crl/${environment}-root.crl`,
    issuingCertificate: `${base}/ca/${environment}/issuing.crt`,
    rootCertificate: `${base}/ca/${environment}/root.crt`,
    ocsp: `${base}/ocsp/${environment}`,
  };
}

export interface LoadOrCreateAuthorityOptions {
  environment: Environment;
  keyStore: KeyStore;
  material: CaMaterialStore;
  now: Date;
  keyAlgorithm: CaKeyAlgorithm;
  /** e.g. "KeyPortal" */
  organizationName: string;
  /**
   * e.g. http://127.0.0.1:4000/crl ; the CRL of an environment is <base>/<ENV>.crl (MTF.crl, PRODUCTION.crl).
   * The other URLs (authorityUrls) are under the same public URL, the one this ends in /crl.
   */
  crlBaseUrl: string;
}

const ROOT_YEARS = 20;
const ISSUING_YEARS = 10;

function addYears(date: Date, years: number): Date {
  const d = new Date(date.getTime());
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

export class CertificateAuthority {
  readonly chainPem: string;
  private readonly issuerRef: IssuerRef;
  private readonly rootRef: IssuerRef;

  constructor(
    readonly environment: Environment,
    readonly root: X509Certificate,
    readonly issuing: X509Certificate,
    issuingKeys: CryptoKeyPair,
    keyStore: KeyStore,
    readonly urls: AuthorityUrls,
    rootKeys: CryptoKeyPair,
  ) {
    this.chainPem = certificateToPem(new Uint8Array(issuing.rawData)) + certificateToPem(new Uint8Array(root.rawData));
    this.issuerRef = { certificate: issuing, keys: issuingKeys, crypto: keyStore.crypto, signer: keyStore };
    this.rootRef = { certificate: root, keys: rootKeys, crypto: keyStore.crypto, signer: keyStore };
  }

  /** The issuing CA as an IssuerRef, for issueCertificate (the KMS's own TLS/signing/encryption certificates). */
  get issuer(): IssuerRef {
    return this.issuerRef;
  }

  get crlUrl(): string {
    return this.urls.crl;
  }

  /** What every certificate of the issuing CA carries in its AIA: the OCSP responder and the issuing CA's certificate. */
  get authorityInfoAccess(): AuthorityInfoAccess {
    return { ocsp: this.urls.ocsp, caIssuers: this.urls.issuingCertificate };
  }

  issue(spec: Omit<LeafSpec, "issuer" | "crlUrl" | "authorityInfoAccess">): Promise<Uint8Array> {
    return issueLeafCertificate({ ...spec, issuer: this.issuerRef, crlUrl: this.urls.crl, authorityInfoAccess: this.authorityInfoAccess, lint: true });
  }

  /** The issuing CA's CRL: the participants' and the KMS's certificates. */
  signCrl(input: CrlInput): Promise<Uint8Array> {
    return buildCrl(input, this.issuerRef);
  }

  /** The root's CRL: the issuing CAs it certified that are revoked. */
  signRootCrl(input: CrlInput): Promise<Uint8Array> {
    return buildCrl(input, this.rootRef);
  }
}

async function spkiOf(crypto: Crypto, publicKey: CryptoKey): Promise<Buffer> {
  return Buffer.from(await crypto.subtle.exportKey("spki", publicKey));
}

async function checkKeyMatches(name: string, certificate: X509Certificate, keys: CryptoKeyPair, crypto: Crypto): Promise<void> {
  const certSpki = Buffer.from(certificate.publicKey.rawData);
  if (!certSpki.equals(await spkiOf(crypto, keys.publicKey))) {
    throw new Error(`CA certificate ${name} does not match the key of the same name in the key store`);
  }
}

/**
 * One CA level: find the stored certificate and its key, or create both.
 * Creation goes through putIfAbsent, so concurrent starters agree on one certificate.
 */
async function loadOrCreateLevel(
  name: string,
  opts: LoadOrCreateAuthorityOptions,
  create: (keys: CryptoKeyPair) => Promise<Uint8Array>,
): Promise<{ certificate: X509Certificate; keys: CryptoKeyPair }> {
  const { keyStore, material } = opts;
  let pem = await material.get(name);
  if (!pem) {
    const keys = await keyStore.getOrCreateKeyPair(name, opts.keyAlgorithm);
    pem = await material.putIfAbsent(name, certificateToPem(await create(keys)));
  }
  // The stored certificate decides which key is the CA's: if another process won
  // the creation race with a key of its own, this finds that key, not ours.
  const certificate = new X509Certificate(pem);
  const keys = await keyStore.findKeyPair(name, { publicKeySpki: new Uint8Array(certificate.publicKey.rawData) });
  if (!keys) {
    // Typical cause: a second instance on the same database with its own data directory.
    throw new Error(
      `CA certificate ${name} exists in the database but the key store has no key ${name} with its public key; ` +
        "instances sharing a database must share the CA keys (the same KEYPORTAL_DATA_DIR, or PKCS#11)",
    );
  }
  await checkKeyMatches(name, certificate, keys, keyStore.crypto);
  return { certificate, keys };
}

export async function loadOrCreateAuthority(opts: LoadOrCreateAuthorityOptions): Promise<CertificateAuthority> {
  const { environment, keyStore, now, organizationName } = opts;
  const env = environment.toLowerCase();
  const crypto = keyStore.crypto;

  const urls = authorityUrls(opts.crlBaseUrl.replace(/\/+$/, "").replace(/\/crl$/, ""), environment);
  const rootName = nameDer([
    ["C", KMS_ORGANIZATION.country],
    ["O", organizationName],
    ["CN", `KeyPortal ${environment} Root CA`],
  ]);
  const root = await loadOrCreateLevel(`ca-${env}-root`, opts, async (keys) => {
    return buildCertificate({
      subject: rootName,
      issuer: rootName, // self-signed: the root names itself as issuer
      spki: new Uint8Array(await spkiOf(crypto, keys.publicKey)),
      serialHex: newSerialHex(),
      notBefore: now,
      notAfter: addYears(now, ROOT_YEARS),
      ca: {},
      keyUsage: ["keyCertSign", "cRLSign"],
      extendedKeyUsage: [],
      lint: { role: "root" },
      signingKey: keys.privateKey,
      crypto,
      signer: keyStore,
    });
  });

  const issuing = await loadOrCreateLevel(`ca-${env}-issuing`, opts, async (keys) => {
    const notAfter = addYears(now, ISSUING_YEARS);
    return buildCertificate({
      subject: nameDer([
        ["C", KMS_ORGANIZATION.country],
        ["O", organizationName],
        ["CN", `KeyPortal ${environment} Issuing CA`],
      ]),
      issuer: certificateSubjectDer(new Uint8Array(root.certificate.rawData)),
      spki: new Uint8Array(await spkiOf(crypto, keys.publicKey)),
      serialHex: newSerialHex(),
      notBefore: now,
      notAfter: notAfter > root.certificate.notAfter ? root.certificate.notAfter : notAfter,
      ca: { pathLength: 0 },
      keyUsage: ["keyCertSign", "cRLSign"],
      extendedKeyUsage: [],
      authorityKeyId: keyIdentifierOf(root.certificate),
      crlUrl: urls.rootCrl,
      authorityInfoAccess: { caIssuers: urls.rootCertificate },
      lint: { role: "intermediate" },
      signingKey: root.keys.privateKey,
      crypto,
      signer: keyStore,
    });
  });

  return new CertificateAuthority(environment, root.certificate, issuing.certificate, issuing.keys, keyStore, urls, root.keys);
}
