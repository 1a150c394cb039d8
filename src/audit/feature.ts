import type { Feature } from "../kernel/feature.js";
import { AuditEvent } from "./audit-event.entity.js";
import { AuditResolver } from "./audit.resolver.js";

/** What the audit feature brings to the schema and the data source. */
export const auditFeature: Feature = {
  name: "audit",
  entities: [AuditEvent],
  resolvers: [AuditResolver],
};
