import { Environment } from "../kernel/domain.js";
import type { RouteInstaller } from "../http/routes.js";
import type { CrlService } from "./crl.service.js";
import { DomainError } from "../kernel/errors.js";

const FILE = /^(mtf|production)(-root)?\.crl$/i;

/**
 * GET /crl/MTF.crl and /crl/PRODUCTION.crl (either case): the environment's
 * issuing CA's CRL, DER; /crl/MTF-root.crl and /crl/PRODUCTION-root.crl: its
 * root's CRL (the issuing CA's cRLDistributionPoints). Public, as CRLs are:
 * relying parties fetch them without a token.
 */
export function crlRoutes(crls: CrlService): RouteInstaller {
  return (router, { sendError }) => {
    router.get("/crl/:file", async (req, res) => {
      try {
        const match = FILE.exec(req.params.file);
        if (!match) {
          throw DomainError.of("NOT_FOUND", "use /crl/MTF.crl, /crl/PRODUCTION.crl, /crl/MTF-root.crl or /crl/PRODUCTION-root.crl");
        }
        const environment = match[1]!.toUpperCase() === "MTF" ? Environment.MTF : Environment.PRODUCTION;
        const issuer = match[2] ? "root" : "issuing";
        const crl = await crls.current(environment, issuer);
        const name = issuer === "root" ? `${environment}-root` : environment;
        const etag = `"${name}-${crl.crlNumber.toString()}"`;
        // Revalidate every time: a revocation must be visible at once, and the ETag makes that cheap.
        res.setHeader("Cache-Control", "public, no-cache");
        res.setHeader("ETag", etag);
        res.setHeader("Last-Modified", crl.thisUpdate.toUTCString());
        if (req.headers["if-none-match"] === etag) {
          res.status(304).end();
          return;
        }
        res
          .status(200)
          .type("application/pkix-crl")
          .setHeader("Content-Disposition", `inline; filename="${name}.crl"`)
          .send(Buffer.from(crl.der));
      } catch (error) {
        sendError(res, error);
      }
    });
  };
}
