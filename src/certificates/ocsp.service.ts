import type { Logger } from "pino";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { CRL_REASON_CODE, type Environment, RevocationReason } from "../kernel/domain.js";
import { KmsCertificate } from "../kms/kms-certificate.entity.js";
import {
  buildOcspResponse,
  certIdMatchesIssuer,
  type CertStatus,
  OcspRequestError,
  ocspErrorResponse,
  parseOcspRequest,
} from "../pki/ocsp.js";
import type { Authorities } from "./authorities.js";
import { Certificate } from "./certificate.entity.js";

/** How long an answer may be relied on (nextUpdate - thisUpdate); a revocation is answered at once, so this bounds a cache's staleness. */
export const OCSP_VALIDITY_MS = 60 * 60 * 1000;

/**
 * The OCSP responder of each environment (RFC 6960), answering for the
 * certificates its issuing CA signed, the same facts as the CRL: revoked
 * certificates with their time and reason, retired KMS certificates as
 * superseded, every other certificate of ours good, any other serial
 * unknown. A CertID naming another CA gets "unauthorized" (RFC 6960 2.3):
 * this responder speaks only for its own issuing CA.
 */
export class OcspService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly authorities: Authorities,
    private readonly logger: Logger,
  ) {}

  /** The DER OCSPResponse for a DER OCSPRequest; errors of the request are OCSP error responses, not exceptions. */
  async respond(environment: Environment, requestDer: Uint8Array): Promise<Uint8Array> {
    const issuer = this.authorities.of(environment).issuer;
    let request;
    try {
      request = parseOcspRequest(requestDer);
      if (!request.certIds.every((id) => certIdMatchesIssuer(id, issuer))) {
        throw new OcspRequestError("unauthorized", "a CertID names a CA this responder does not answer for");
      }
    } catch (error) {
      if (!(error instanceof OcspRequestError)) throw error;
      this.logger.info({ environment, status: error.status, reason: error.message }, "ocsp request refused");
      return ocspErrorResponse(error.status);
    }
    const answers = [];
    for (const certId of request.certIds) answers.push({ certId, status: await this.statusOf(environment, certId.serialHex) });
    const now = new Date(Math.floor(this.clock.now().getTime() / 1000) * 1000);
    return buildOcspResponse(
      { answers, producedAt: now, thisUpdate: now, nextUpdate: new Date(now.getTime() + OCSP_VALIDITY_MS), nonce: request.nonce },
      issuer,
    );
  }

  private async statusOf(environment: Environment, serialHex: string): Promise<CertStatus> {
    const manager = this.db.manager;
    const certificate = await manager.findOne(Certificate, {
      select: { id: true, revokedAt: true, revocationReason: true },
      where: { environment, serialNumber: serialHex },
    });
    if (certificate) {
      if (!certificate.revokedAt) return { status: "good" };
      return { status: "revoked", revokedAt: certificate.revokedAt, reasonCode: CRL_REASON_CODE[certificate.revocationReason ?? RevocationReason.UNSPECIFIED] };
    }
    const kms = await manager.findOne(KmsCertificate, { select: { id: true, retiredAt: true }, where: { environment, serialNumber: serialHex } });
    if (kms) {
      return kms.retiredAt ? { status: "revoked", revokedAt: kms.retiredAt, reasonCode: CRL_REASON_CODE[RevocationReason.SUPERSEDED] } : { status: "good" };
    }
    return { status: "unknown" };
  }
}
