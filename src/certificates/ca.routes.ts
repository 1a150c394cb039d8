import { createHash } from "node:crypto";
import { Environment } from "../kernel/domain.js";
import type { RouteInstaller } from "../http/routes.js";
import { certificateToPem } from "../pki/bundle.js";
import type { Authorities } from "./authorities.js";
import { DomainError } from "../kernel/errors.js";

/** MTF or PRODUCTION from a path segment, upper or lower case; null for anything else. */
export function environmentOf(segment: string): Environment | null {
  const upper = segment.toUpperCase();
  if (segment !== upper && segment !== segment.toLowerCase()) return null;
  return (Object.values(Environment) as string[]).includes(upper) ? (upper as Environment) : null;
}

/** One file under /ca/<ENV>/: its bytes and media type, read from the environment's CA. */
interface CaFile {
  type: string;
  /** inline for what relying parties fetch by URL (AIA caIssuers), attachment for what people save. */
  disposition: "inline" | "attachment";
  body(authorities: Authorities, environment: Environment): string | Buffer;
}

/**
 * The files under /ca/<ENV>/, by name. Add an entry to publish another.
 * The .crt files are DER, as AIA caIssuers URLs must serve them (RFC 5280
 * 4.2.2.1); the .pem files are what `openssl verify -CAfile` takes as it is.
 */
export const CA_FILES: Record<string, CaFile> = {
  /** The issuing CA, DER: the leaves' caIssuers URL. */
  "issuing.crt": { type: "application/pkix-cert", disposition: "inline", body: (a, env) => Buffer.from(a.of(env).issuing.rawData) },
  /** The root, DER: the issuing CA's caIssuers URL. */
  "root.crt": { type: "application/pkix-cert", disposition: "inline", body: (a, env) => Buffer.from(a.of(env).root.rawData) },
  /** Issuing CA then root, PEM. */
  "chain.pem": { type: "application/x-pem-file", disposition: "attachment", body: (a, env) => a.of(env).chainPem },
  /** The self-signed root alone, PEM: the trust anchor to install. */
  "root.pem": {
    type: "application/x-pem-file",
    disposition: "attachment",
    body: (a, env) => certificateToPem(new Uint8Array(a.of(env).root.rawData)),
  },
};

/**
 * GET /ca/<MTF|PRODUCTION>/<file>: the environment's CA certificates. Public,
 * without a token: a trust anchor is meant to be handed out, and a relying
 * party has no API token.
 */
export function caRoutes(authorities: Authorities): RouteInstaller {
  return (router, { sendError }) => {
    router.get("/ca/:environment/:file", (req, res) => {
      try {
        const environment = environmentOf(req.params.environment);
        const file = Object.hasOwn(CA_FILES, req.params.file) ? CA_FILES[req.params.file] : undefined;
        if (!environment || !file) {
          throw DomainError.of("NOT_FOUND", `use /ca/<MTF|PRODUCTION>/<${Object.keys(CA_FILES).join("|")}>`);
        }
        const body = file.body(authorities, environment);
        // CA certificates change only with a new hierarchy; revalidate cheaply by ETag.
        const etag = `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`;
        res.setHeader("Cache-Control", "public, no-cache");
        res.setHeader("ETag", etag);
        if (req.headers["if-none-match"] === etag) {
          res.status(304).end();
          return;
        }
        const filename = file.disposition === "inline" ? `${environment}-${req.params.file}` : `keyportal-${environment.toLowerCase()}-${req.params.file}`;
        res.status(200).type(file.type).setHeader("Content-Disposition", `${file.disposition}; filename="${filename}"`).send(body);
      } catch (error) {
        sendError(res, error);
      }
    });
  };
}
