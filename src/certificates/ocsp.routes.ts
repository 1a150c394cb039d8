import express from "express";
import type { RouteInstaller } from "../http/routes.js";
import { environmentOf } from "./ca.routes.js";
import { OCSP_REQUEST_MAX_BYTES, ocspErrorResponse } from "../pki/ocsp.js";
import type { OcspService } from "./ocsp.service.js";

/** RFC 6960 appendix A.1 GET: the DER request, base64 (standard or URL-safe alphabet), URL-encoded, as the last path part. */
function decodeGetRequest(encoded: string): Uint8Array | null {
  let text: string;
  try {
    text = decodeURIComponent(encoded);
  } catch {
    return null;
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return null;
  return new Uint8Array(Buffer.from(text.replace(/-/g, "+").replace(/_/g, "/"), "base64"));
}

/**
 * POST /ocsp/<ENV> (body: application/ocsp-request) and
 * GET /ocsp/<ENV>/<base64 request>: the environment's OCSP responder, the
 * URL its certificates' AIA names. Public, without a token. A request the
 * responder cannot read is answered as OCSP does (malformedRequest, HTTP 200
 * per RFC 6960 A.1: the status is in the response), never as a JSON error.
 */
export function ocspRoutes(ocsp: OcspService): RouteInstaller {
  const send = (res: express.Response, der: Uint8Array, cacheable: boolean) => {
    res
      .status(200)
      .type("application/ocsp-response")
      // GET answers may be cached by intermediaries for a short while (RFC 5019 6); POST ones are not.
      .setHeader("Cache-Control", cacheable ? "public, max-age=60" : "no-store")
      .send(Buffer.from(der));
  };
  return (router, { sendError }) => {
    router.post("/ocsp/:environment", express.raw({ type: () => true, limit: OCSP_REQUEST_MAX_BYTES }), async (req, res, next) => {
      const environment = environmentOf(req.params.environment);
      if (!environment) return next();
      try {
        const body = Buffer.isBuffer(req.body) ? new Uint8Array(req.body) : null;
        send(res, body ? await ocsp.respond(environment, body) : ocspErrorResponse("malformedRequest"), false);
      } catch (error) {
        sendError(res, error);
      }
    });
    router.get(/^\/ocsp\/([^/]+)\/(.+)$/, async (req, res, next) => {
      const params = req.params as unknown as Record<string, string>;
      const environment = environmentOf(params[0] ?? "");
      if (!environment) return next();
      try {
        const der = decodeGetRequest(params[1] ?? "");
        send(res, der ? await ocsp.respond(environment, der) : ocspErrorResponse("malformedRequest"), true);
      } catch (error) {
        sendError(res, error);
      }
    });
  };
}
