import { In } from "typeorm";
import type { Mutations } from "../kernel/unit-of-work.js";
import { newId } from "../kernel/ids.js";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { OrganizationKind } from "../kernel/domain.js";
import { badInput, conflict, notFound } from "../kernel/errors.js";
import type { AccessPolicy } from "../policy.js";
import { singleLine } from "../validation.js";
import type { Viewer } from "../viewer.js";
import { isCountryCode } from "./countries.js";
import { Organization } from "./organization.entity.js";
import { lockName } from "../kernel/locks.js";

export interface CreateOrganization {
  name: string;
  kind: OrganizationKind;
  contactEmail: string;
  country: string;
}

/** Pragmatic RFC 5322 subset: one @, no spaces, a dotted domain. */
const EMAIL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export function normalizeEmail(raw: string, field = "email"): string {
  const email = raw.trim();
  if (email.length > 254 || !EMAIL.test(email)) throw badInput("INVALID_EMAIL", `${field} "${raw}" is not a valid email address`);
  const [local, domain] = email.split("@") as [string, string];
  return `${local}@${domain.toLowerCase()}`;
}

/** It becomes a certificate subject's O: at most 64 characters (X.520 ub-organization-name). */
export const validateOrganizationName = (raw: string) => singleLine(raw, { field: "name", reason: "INVALID_NAME", max: 64 });

export class OrganizationService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly mutations: Mutations,
  ) {}

  async create(viewer: Viewer | null, input: CreateOrganization): Promise<Organization> {
    return this.mutations.run(
      { action: "organization.create", targetType: "Organization", actor: viewer, details: { name: input.name, kind: input.kind } },
      async ({ em, audit }) => {
        this.policy.requireOperator(viewer);
        if (input.kind === OrganizationKind.KMS) {
          throw badInput("INVALID_KIND", "there is one KMS organization; create PARTICIPANT or MSP organizations");
        }
        const name = validateOrganizationName(input.name);
        const country = input.country.trim().toUpperCase();
        if (!isCountryCode(country)) throw badInput("INVALID_COUNTRY", `"${input.country}" is not an ISO 3166-1 alpha-2 country code`);
        const contactEmail = normalizeEmail(input.contactEmail, "contactEmail");
        await lockName(em, `organization-name ${name}`); // two creations of one name: the second sees the first
        const existing = await em.findOne(Organization, { where: { name } });
        if (existing) throw conflict("NAME_TAKEN", `an organization named "${name}" already exists`);
        const org = em.create(Organization, { id: newId(), name, kind: input.kind, contactEmail, country, createdAt: this.clock.now() });
        await em.insert(Organization, org);
        audit.targetId = org.id;
        audit.organizationId = org.id;
        audit.details = { name, kind: org.kind, country, contactEmail };
        return org;
      },
    );
  }

  async get(viewer: Viewer | null, id: string): Promise<Organization | null> {
    const v = this.policy.requireViewer(viewer);
    if (!(await this.policy.canReadOrganization(v, id))) return null;
    return this.db.manager.findOne(Organization, { where: { id } });
  }

  async require(viewer: Viewer | null, id: string): Promise<Organization> {
    const org = await this.get(viewer, id);
    if (!org) throw notFound("organization");
    return org;
  }

  async list(viewer: Viewer | null, kind?: OrganizationKind | null): Promise<Organization[]> {
    const v = this.policy.requireViewer(viewer);
    const visible = await this.policy.visibleOrganizationIds(v);
    const where = {
      ...(kind ? { kind } : {}),
      ...(visible ? { id: In(visible) } : {}),
    };
    return this.db.manager.find(Organization, { where, order: { name: "ASC", id: "ASC" } });
  }

  /** For internal use (loaders, other services): no policy applied. */
}
