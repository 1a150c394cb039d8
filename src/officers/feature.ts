import type { Feature } from "../kernel/feature.js";
import { ApiToken } from "./api-token.entity.js";
import { EnrollmentCode } from "./enrollment-code.entity.js";
import { Officer } from "./officer.entity.js";
import { OfficerResolver } from "./officer.resolver.js";

/** What the officers feature brings to the schema and the data source. */
export const officersFeature: Feature = {
  name: "officers",
  entities: [Officer, ApiToken, EnrollmentCode],
  resolvers: [OfficerResolver],
};
