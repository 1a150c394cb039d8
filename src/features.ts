import { auditFeature } from "./audit/feature.js";
import { certificatesFeature } from "./certificates/feature.js";
import { csrsFeature } from "./csrs/feature.js";
import { delegationsFeature } from "./delegations/feature.js";
import type { Feature } from "./kernel/feature.js";
import { kmsFeature } from "./kms/feature.js";
import { notificationsFeature } from "./notifications/feature.js";
import { officersFeature } from "./officers/feature.js";
import { organizationsFeature } from "./organizations/feature.js";

/** The features of KeyPortal: the one list that drives the data source's entities and the schema's resolvers. */
export const FEATURES: readonly Feature[] = [
  organizationsFeature,
  officersFeature,
  auditFeature,
  csrsFeature,
  certificatesFeature,
  kmsFeature,
  delegationsFeature,
  notificationsFeature,
];
