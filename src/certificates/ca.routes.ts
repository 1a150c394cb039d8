import { createHash } from "node:crypto";
import { Environment } from "../domain.js";
import type { RouteInstaller } from "../http/server.js";
import { certificateToPem } from "../pki/bundle.js";
import type { Authorities } from "./authorities.js";

/** One file under /ca/<ENV>/: what it holds, read from the environment's CA. */
type CaFile = (authorities: Authorities, environment: Environment) => string;

/**
 * The files under /ca/<ENV>/, by name. Add an entry to publish another
 * (e.g. the issuing CA alone, a root CRL).
 */
export const CA_FILES: Record<string, CaFile> = {
  /** Issuing CA then root, PEM: what `openssl verify -CAfile` takes. */
  "chain.pem": (authorities, environment) => authorities.of(environment).chainPem,
  /** The self-signed root alone, PEM: the trust anchor to install. */
  "root.pem": (authorities, environment) => certificateToPem(new Uint8Array(authorities.of(environment).root.rawData)),
};

function environmentOf(segment: string): Environment | null {
  const upper = segment.toUpperCase();
  if (segment !== upper && segment !== segment.toLowerCase()) return null;
  return (Object.values(Environment) as string[]).includes(upper) ? (upper as Environment) : null;
}

/**
 * GET /ca/<MTF|PRODUCTION>/<file>: the environment's CA certificates as PEM
 * files that OpenSSL reads as they are. Public, without a token: a trust
 * anchor is meant to be handed out, and a relying party has no API token.
 */
export function caRoutes(authorities: Authorities): RouteInstaller {
  return (router, { sendError }) => {
    router.get("/ca/:environment/:file", (req, res) => {
      try {
        const environment = environmentOf(req.params.environment);
        const file = Object.hasOwn(CA_FILES, req.params.file) ? CA_FILES[req.params.file] : undefined;
        if (!environment || !file) {
          res.status(404).json({
            error: { code: "NOT_FOUND", reason: "NOT_FOUND", message: `use /ca/<MTF|PRODUCTION>/<${Object.keys(CA_FILES).join("|")}>` },
          });
          return;
        }
        const body = file(authorities, environment);
        const etag = `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`;
        res.setHeader("Cache-Control", "public, no-cache");
        res.setHeader("ETag", etag);
        if (req.headers["if-none-match"] === etag) {
          res.status(304).end();
          return;
        }
        res
          .status(200)
          .type("application/x-pem-file")
          .setHeader("Content-Disposition", `attachment; filename="keyportal-${environment.toLowerCase()}-${req.params.file}"`)
          .send(body);
      } catch (error) {
        sendError(res, error);
      }
    });
  };
}
