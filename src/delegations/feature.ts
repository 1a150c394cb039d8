import type { Feature } from "../kernel/feature.js";
import { Delegation } from "./delegation.entity.js";
import { DelegationResolver, OrganizationDelegationsResolver } from "./delegation.resolver.js";

/** What the delegations feature brings to the schema and the data source. */
export const delegationsFeature: Feature = {
  name: "delegations",
  entities: [Delegation],
  resolvers: [DelegationResolver, OrganizationDelegationsResolver],
};
