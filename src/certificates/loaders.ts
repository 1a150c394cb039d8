import DataLoader from "dataloader";
import { byId, type Context } from "../graphql/context.js";
import type { CertificateSigningRequest } from "../csrs/csr.entity.js";
import type { Certificate } from "./certificate.entity.js";

export interface KeyMaterialSources {
  certificatesByIds(ids: readonly string[]): Promise<Certificate[]>;
  csrsByIds(ids: readonly string[]): Promise<CertificateSigningRequest[]>;
}

/** Per-request batched lookups for nested certificate and CSR fields; the caller has decided visibility. */
export const certificateLoader = (ctx: Context, sources: KeyMaterialSources) =>
  ctx.loaders.lazy("certificate:byId", () => new DataLoader(byId((ids) => sources.certificatesByIds(ids))));

export const csrLoader = (ctx: Context, sources: KeyMaterialSources) =>
  ctx.loaders.lazy("csr:byId", () => new DataLoader(byId((ids) => sources.csrsByIds(ids))));
