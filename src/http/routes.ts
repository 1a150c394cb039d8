import type express from "express";
import type { Request, Response } from "express";
import type { Viewer } from "../viewer.js";

/**
 * The one interface through which features add REST routes (downloads, CRLs,
 * CA files, OCSP, KMS certificates): a feature exports a RouteInstaller, the
 * composition root hands it to the HTTP server, and the feature never imports
 * the server itself.
 */
export type RouteInstaller = (router: express.Router, helpers: RouteHelpers) => void;

export interface RouteHelpers {
  /** The viewer of a request with `Authorization: Bearer`, or null; throws RATE_LIMITED when over its quota. */
  viewerOf(req: Request): Promise<Viewer | null>;
  /** Sends an error as the one mapping says (kernel/client-error.ts): a DomainError with its status, anything else a bare 500. */
  sendError(res: Response, error: unknown): void;
}

/**
 * The installer of each route factory a feature declares (Feature.routes in
 * kernel/feature.ts), keyed by the factory: the composition root builds them
 * with their services, the server registers them in the order of the list of
 * features.
 */
export type RouteInstallers = ReadonlyMap<Function, RouteInstaller>;
