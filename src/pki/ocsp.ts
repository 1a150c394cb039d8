/**
 * OCSP (RFC 6960) as pure functions: read an OCSPRequest, write a signed
 * BasicOCSPResponse. The issuing CA signs its own responses (4.2.2.2: the CA
 * that issued the certificate is an authorized responder), so a client
 * needs nothing beyond the chain it already has; the responderID is byKey.
 * Times are GeneralizedTime, as OCSP requires (4.2.1).
 *
 * Whether a serial is good, revoked or unknown is the caller's (the
 * database's) to say; this file only matches CertIDs to the issuer.
 */
import { createHash } from "node:crypto";
import { children, content, decodeOid, encodeGeneralizedTime, encodeOid, raw, readTlv, sequence, tlv, DerError, type Tlv } from "./der.js";
import { certificateSubjectDer, type IssuerRef } from "./issue.js";
import { readSpki, toBytes } from "./spki.js";
import { signatureAlgorithmFor } from "./algorithms.js";
import { signCertificate } from "./tbs.js";

export const OCSP_REQUEST_MAX_BYTES = 16 * 1024;
/** At most this many certificates per request (openssl sends one per -serial/-cert). */
const MAX_REQUESTS = 32;
const OID_NONCE = "1.3.6.1.5.5.7.48.1.2";
const OID_BASIC = encodeOid("1.3.6.1.5.5.7.48.1.1");

/** CertID hash algorithms by OID: SHA-1 (what OpenSSL and RFC 5019 clients send) and SHA-2. */
const HASHES: Record<string, string> = {
  "1.3.14.3.2.26": "sha1",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};

/** OCSPResponseStatus values (4.2.1) other than successful. */
export type OcspErrorStatus = "malformedRequest" | "internalError" | "tryLater" | "unauthorized";
const ERROR_STATUS: Record<OcspErrorStatus, number> = { malformedRequest: 1, internalError: 2, tryLater: 3, unauthorized: 6 };

export class OcspRequestError extends Error {
  override readonly name = "OcspRequestError";
  constructor(
    readonly status: OcspErrorStatus,
    message: string,
  ) {
    super(message);
  }
}

export interface OcspCertId {
  hash: string;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  /** Lowercase hex of the serial's INTEGER content (our serials have no leading zero octet: the stored form). */
  serialHex: string;
  /** The CertID TLV as the client sent it: echoed in the SingleResponse. */
  der: Uint8Array;
}

export interface OcspRequest {
  certIds: OcspCertId[];
  /** The nonce extension's extnValue content (RFC 8954: an OCTET STRING TLV), echoed as is when present. */
  nonce: Uint8Array | undefined;
}

const malformed = (message: string) => new OcspRequestError("malformedRequest", message);

/** Reads an OCSPRequest (4.1.1). A signature on the request, if any, is not needed and not checked. */
export function parseOcspRequest(der: Uint8Array): OcspRequest {
  if (der.length > OCSP_REQUEST_MAX_BYTES) throw malformed("request too large");
  try {
    const outer = readTlv(der, 0);
    if (outer.tag !== 0x30 || outer.end !== der.length) throw new DerError("an OCSPRequest is one SEQUENCE");
    const tbs = children(der, outer)[0];
    if (!tbs || tbs.tag !== 0x30) throw new DerError("no TBSRequest");
    let nonce: Uint8Array | undefined;
    let list: Tlv | undefined;
    for (const field of children(der, tbs)) {
      if (field.tag === 0xa0) {
        const version = children(der, field)[0];
        if (!version || version.tag !== 0x02 || content(der, version)[0] !== 0) throw malformed("only OCSP v1 requests are understood");
      } else if (field.tag === 0xa1) {
        // requestorName: not needed
      } else if (field.tag === 0x30) {
        list = field;
      } else if (field.tag === 0xa2) {
        nonce = nonceOf(der, field);
      } else {
        throw new DerError("unexpected TBSRequest field");
      }
    }
    if (!list) throw new DerError("no requestList");
    const requests = children(der, list);
    if (requests.length === 0 || requests.length > MAX_REQUESTS) throw malformed(`a request names 1 to ${MAX_REQUESTS} certificates`);
    return { certIds: requests.map((r) => certIdOf(der, r)), nonce };
  } catch (e) {
    if (e instanceof OcspRequestError) throw e;
    throw malformed("the request is not a DER OCSPRequest");
  }
}

function nonceOf(der: Uint8Array, field: Tlv): Uint8Array | undefined {
  const extensions = children(der, field)[0];
  if (!extensions || extensions.tag !== 0x30) throw new DerError("requestExtensions is a SEQUENCE");
  for (const extension of children(der, extensions)) {
    const parts = children(der, extension);
    if (parts[0]?.tag !== 0x06) throw new DerError("an Extension starts with its OID");
    if (decodeOid(content(der, parts[0])) !== OID_NONCE) continue;
    const value = parts[parts.length - 1]!;
    if (value.tag !== 0x04 || value.end - value.contentStart > 128) throw malformed("the nonce must be at most 128 octets");
    return new Uint8Array(content(der, value));
  }
  return undefined;
}

function certIdOf(der: Uint8Array, request: Tlv): OcspCertId {
  const reqCert = request.tag === 0x30 ? children(der, request)[0] : undefined;
  if (!reqCert || reqCert.tag !== 0x30) throw new DerError("a Request starts with its CertID");
  const [algorithm, nameHash, keyHash, serial] = children(der, reqCert);
  if (!algorithm || algorithm.tag !== 0x30 || nameHash?.tag !== 0x04 || keyHash?.tag !== 0x04 || serial?.tag !== 0x02) {
    throw new DerError("CertID is hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber");
  }
  const oid = children(der, algorithm)[0];
  if (!oid || oid.tag !== 0x06) throw new DerError("hashAlgorithm starts with its OID");
  const hash = HASHES[decodeOid(content(der, oid))];
  if (!hash) throw malformed("unsupported CertID hash algorithm");
  return {
    hash,
    issuerNameHash: new Uint8Array(content(der, nameHash)),
    issuerKeyHash: new Uint8Array(content(der, keyHash)),
    serialHex: Buffer.from(content(der, serial)).toString("hex"),
    der: new Uint8Array(raw(der, reqCert)),
  };
}

/** Whether a CertID names `issuer` (its subject Name and public key, hashed with the CertID's hash). */
export function certIdMatchesIssuer(id: OcspCertId, issuer: IssuerRef): boolean {
  const certificate = new Uint8Array(issuer.certificate.rawData);
  const name = createHash(id.hash).update(certificateSubjectDer(certificate)).digest();
  const key = createHash(id.hash).update(readSpki(toBytes(issuer.certificate.publicKey.rawData)).subjectPublicKey).digest();
  return name.equals(id.issuerNameHash) && key.equals(id.issuerKeyHash);
}

export type CertStatus = { status: "good" } | { status: "revoked"; revokedAt: Date; reasonCode: number } | { status: "unknown" };

export interface SingleAnswer {
  certId: OcspCertId;
  status: CertStatus;
}

const generalizedTime = encodeGeneralizedTime;

function certStatusDer(status: CertStatus): Uint8Array {
  switch (status.status) {
    case "good":
      return Uint8Array.of(0x80, 0x00);
    case "unknown":
      return Uint8Array.of(0x82, 0x00);
    case "revoked": {
      // RevokedInfo; reason "unspecified" (0) is left out, as on the CRL.
      const reason = status.reasonCode === 0 ? [] : [tlv(0xa0, tlv(0x0a, Uint8Array.of(status.reasonCode)))];
      return tlv(0xa1, generalizedTime(status.revokedAt), ...reason);
    }
  }
}

/** An OCSPResponse that carries only an error status (no responseBytes, no signature). */
export function ocspErrorResponse(status: OcspErrorStatus): Uint8Array {
  return sequence(tlv(0x0a, Uint8Array.of(ERROR_STATUS[status])));
}

export interface OcspResponseInput {
  answers: SingleAnswer[];
  producedAt: Date;
  thisUpdate: Date;
  nextUpdate: Date;
  nonce: Uint8Array | undefined;
}

/** A successful OCSPResponse whose BasicOCSPResponse `issuer` signs. */
export async function buildOcspResponse(input: OcspResponseInput, issuer: IssuerRef): Promise<Uint8Array> {
  const keyHash = createHash("sha1").update(readSpki(toBytes(issuer.certificate.publicKey.rawData)).subjectPublicKey).digest();
  const responses = input.answers.map((a) =>
    sequence(a.certId.der, certStatusDer(a.status), generalizedTime(input.thisUpdate), tlv(0xa0, generalizedTime(input.nextUpdate))),
  );
  const extensions = input.nonce
    ? [tlv(0xa1, sequence(sequence(encodeOid(OID_NONCE), tlv(0x04, input.nonce))))]
    : [];
  const responseData = new Uint8Array(
    sequence(tlv(0xa2, tlv(0x04, keyHash)), generalizedTime(input.producedAt), sequence(...responses), ...extensions),
  );
  const algorithm = signatureAlgorithmFor(issuer.keys.privateKey);
  // BasicOCSPResponse is shaped as a Certificate: { tbsResponseData, signatureAlgorithm, signature } (no certs: the CA signs).
  const basic = await signCertificate(responseData, { algorithm, privateKey: issuer.keys.privateKey, signer: issuer.signer });
  return sequence(tlv(0x0a, Uint8Array.of(0)), tlv(0xa0, sequence(OID_BASIC, tlv(0x04, basic))));
}
