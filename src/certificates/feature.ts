import type { Feature } from "../kernel/feature.js";
import { CertificateExpiryResolver } from "./certificate-expiry.resolver.js";
import { BlockedKey, Certificate } from "./certificate.entity.js";
import { CertificateResolver, OrganizationKeyMaterialResolver } from "./certificate.resolver.js";
import { CrlState } from "./crl-state.entity.js";
import { RevocationResolver } from "./revocation.resolver.js";
import { caRoutes } from "./ca.routes.js";
import { certificateDownloadRoutes } from "./certificate.routes.js";
import { crlRoutes } from "./crl.routes.js";
import { ocspRoutes } from "./ocsp.routes.js";
import { CertificateTally, CsrTally } from "./tally.entity.js";

/** What the certificates feature brings to the schema, the data source and the REST routes. */
export const certificatesFeature: Feature = {
  name: "certificates",
  entities: [Certificate, BlockedKey, CrlState, CertificateTally, CsrTally],
  resolvers: [CertificateResolver, OrganizationKeyMaterialResolver, RevocationResolver, CertificateExpiryResolver],
  routes: [certificateDownloadRoutes, crlRoutes, caRoutes, ocspRoutes],
};
