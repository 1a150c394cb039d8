import { Role } from "./kernel/domain.js";
import type { Officer } from "./officers/officer.entity.js";
import type { Organization } from "./organizations/organization.entity.js";

/** Who is asking: an authenticated officer, through one API token. */
export interface Viewer {
  officer: Officer;
  organization: Organization;
  role: Role;
  tokenId: string;
  /** When the token stops working; null for no expiry. */
  tokenExpiresAt?: Date | null;
}

export const isOperator = (viewer: Viewer | null): boolean => viewer?.role === Role.KMS_OPERATOR;
