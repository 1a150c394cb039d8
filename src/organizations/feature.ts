import type { Feature } from "../kernel/feature.js";
import { Organization } from "./organization.entity.js";
import { OrganizationResolver } from "./organization.resolver.js";

/** What the organizations feature brings to the schema and the data source. */
export const organizationsFeature: Feature = {
  name: "organizations",
  entities: [Organization],
  resolvers: [OrganizationResolver],
};
