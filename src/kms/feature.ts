import type { Feature } from "../kernel/feature.js";
import { KmsCertificate } from "./kms-certificate.entity.js";
import { KmsRotationApproval } from "./kms-rotation-approval.entity.js";
import { kmsCertificateRoutes } from "./kms.routes.js";
import { KmsCertificateResolver, KmsRotationApprovalResolver, NotificationKmsCertificateResolver } from "./kms.resolver.js";

/** What the kms feature brings to the schema, the data source and the REST routes. */
export const kmsFeature: Feature = {
  name: "kms",
  entities: [KmsCertificate, KmsRotationApproval],
  resolvers: [KmsCertificateResolver, NotificationKmsCertificateResolver, KmsRotationApprovalResolver],
  routes: [kmsCertificateRoutes],
};
