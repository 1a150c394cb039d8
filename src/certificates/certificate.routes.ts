import type { RouteInstaller } from "../http/routes.js";
import type { CertificateService, DownloadFormat } from "./certificate.service.js";
import { DomainError } from "../kernel/errors.js";

const FILE = /^([0-9a-f-]{36})\.(pem|der|p7b|chain\.pem)$/;

/** GET /certificates/<id>.pem|.der|.p7b|.chain.pem with the bearer token; the same tenancy as GraphQL. */
export function certificateDownloadRoutes(certificates: CertificateService): RouteInstaller {
  return (router, { viewerOf, sendError }) => {
    router.get("/certificates/:file", async (req, res) => {
      try {
        const match = FILE.exec(req.params.file);
        if (!match) {
          throw DomainError.of("NOT_FOUND", "use /certificates/<id>.pem, .der, .p7b or .chain.pem");
        }
        const viewer = await viewerOf(req);
        const file = await certificates.download(viewer, match[1]!, match[2] as DownloadFormat);
        res
          .status(200)
          .type(file.contentType)
          .setHeader("Content-Disposition", `attachment; filename="${file.filename}"`)
          .setHeader("Cache-Control", "private, no-store")
          .send(file.body);
      } catch (error) {
        sendError(res, error);
      }
    });
  };
}
