import { auditFeature } from "./audit/feature.js";
import { certificatesFeature } from "./certificates/feature.js";
import { csrsFeature } from "./csrs/feature.js";
import { delegationsFeature } from "./delegations/feature.js";
import type { Feature } from "./kernel/feature.js";
import { kmsFeature } from "./kms/feature.js";
import { notificationsFeature } from "./notifications/feature.js";
import { officersFeature } from "./officers/feature.js";
import { organizationsFeature } from "./organizations/feature.js";

/** The features of KeyPortal: the one list that drives the data source's entities, the schema's resolvers and the REST routes. */
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

/** Every persisted entity, each declared by its feature; the composition root hands them to the data source. */
export const ENTITIES: readonly Function[] = FEATURES.flatMap((feature) => [...feature.entities]);

/** The factories of every REST route installer, in registration order; http/server.ts registers them in this order. */
export const ROUTES: readonly Function[] = FEATURES.flatMap((feature) => [...(feature.routes ?? [])]);
