import { Environment, KmsCertificatePurpose } from "../kernel/domain.js";
import type { RouteInstaller } from "../http/routes.js";
import type { KmsService } from "./kms.service.js";
import { DomainError } from "../kernel/errors.js";

const FILE = /^([A-Za-z_]+)\.(pem|chain\.pem)$/;

function environmentOf(segment: string): Environment | null {
  const upper = segment.toUpperCase();
  return (Object.values(Environment) as string[]).includes(upper) ? (upper as Environment) : null;
}

/** MESSAGE_SIGNING or message_signing; nothing else (no guessing at other spellings). */
function purposeOf(name: string): KmsCertificatePurpose | null {
  if (name !== name.toUpperCase() && name !== name.toLowerCase()) return null;
  const upper = name.toUpperCase();
  return (Object.values(KmsCertificatePurpose) as string[]).includes(upper) ? (upper as KmsCertificatePurpose) : null;
}

/**
 * GET /kms/<ENV>/<purpose>.pem (the current certificate) and
 * /kms/<ENV>/<purpose>.chain.pem (with the issuing CA and root), e.g.
 * /kms/MTF/message_encryption.pem.
 *
 * Public, without a token: these are public certificates that the KMS hands
 * to anyone it talks to (TLS handshakes, signed messages), and the scripts
 * that fetch them after a KMS_CERTIFICATE_PUBLISHED should not need an API
 * token. A token, if sent, is not looked at. Not cached by intermediaries
 * beyond revalidation (ETag = the certificate's SHA-256), so a rotation is
 * seen at once.
 */
export function kmsCertificateRoutes(kms: KmsService): RouteInstaller {
  return (router, { sendError }) => {
    router.get("/kms/:environment/:file", async (req, res) => {
      try {
        const environment = environmentOf(req.params.environment);
        const match = FILE.exec(req.params.file);
        const purpose = match ? purposeOf(match[1]!) : null;
        if (!environment || !match || !purpose) {
          throw DomainError.of("NOT_FOUND", "use /kms/<MTF|PRODUCTION>/<message_signing|message_encryption|tls_server>.pem or .chain.pem");
        }
        const certificate = await kms.current(environment, purpose);
        const chain = match[2] === "chain.pem";
        const name = `kms-${environment.toLowerCase()}-${purpose.toLowerCase()}-${certificate.serialNumber}${chain ? ".chain" : ""}.pem`;
        res
          .status(200)
          .type("application/x-pem-file")
          .setHeader("Content-Disposition", `attachment; filename="${name}"`)
          .setHeader("Cache-Control", "no-cache")
          .setHeader("ETag", `"${certificate.fingerprintSha256}${chain ? "-chain" : ""}"`)
          .setHeader("X-Kms-Key-Id", certificate.keyId)
          .send(chain ? kms.chainPem(certificate) : kms.pem(certificate));
      } catch (error) {
        sendError(res, error);
      }
    });
  };
}
