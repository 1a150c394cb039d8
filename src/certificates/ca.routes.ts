import { Environment } from "../domain.js";
import type { RouteInstaller } from "../http/server.js";
import type { Authorities } from "./authorities.js";

/** MTF or PRODUCTION from a path segment, in either case; null for anything else. */
export function environmentOf(segment: string): Environment | null {
  const upper = segment.toUpperCase();
  return (Object.values(Environment) as string[]).includes(upper) ? (upper as Environment) : null;
}

/** The CA certificates of an environment by file name under /ca/<ENV>/: DER, as AIA caIssuers URLs must serve them (RFC 5280 4.2.2.1). */
const FILES: Record<string, (ca: ReturnType<Authorities["of"]>) => ArrayBuffer> = {
  "issuing.crt": (ca) => ca.issuing.rawData,
  "root.crt": (ca) => ca.root.rawData,
};

/**
 * GET /ca/<ENV>/issuing.crt and /ca/<ENV>/root.crt: the environment's CA
 * certificates, DER (application/pkix-cert), the URLs the leaves' and the
 * issuing CA's authorityInfoAccess caIssuers name. Public, without a token.
 * Other files of /ca/<ENV>/ belong here too (add them to FILES or beside it).
 */
export function caRoutes(authorities: Authorities): RouteInstaller {
  return (router, { sendError }) => {
    router.get("/ca/:environment/:file", (req, res, next) => {
      try {
        const environment = environmentOf(req.params.environment);
        const file = FILES[req.params.file];
        if (!environment || !file) {
          next();
          return;
        }
        const ca = authorities.of(environment);
        res
          .status(200)
          .type("application/pkix-cert")
          // CA certificates change only with a new hierarchy; a day's caching is safe.
          .setHeader("Cache-Control", "public, max-age=86400")
          .setHeader("Content-Disposition", `inline; filename="${environment}-${req.params.file}"`)
          .send(Buffer.from(file(ca)));
      } catch (error) {
        sendError(res, error);
      }
    });
  };
}
