import type { Feature } from "../kernel/feature.js";
import { CertificateSigningRequest } from "./csr.entity.js";
import { CsrResolver } from "./csr.resolver.js";

/** What the csrs feature brings to the schema and the data source. */
export const csrsFeature: Feature = {
  name: "csrs",
  entities: [CertificateSigningRequest],
  resolvers: [CsrResolver],
};
