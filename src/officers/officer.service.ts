import { randomUUID } from "node:crypto";
import { In } from "typeorm";
import type { Mutations } from "../audit/mutation.js";
import type { Clock } from "../clock.js";
import type { Database } from "../db/data-source.js";
import { NotificationType, OfficerStatus, OrganizationKind, Role } from "../domain.js";
import type { EventBus } from "../events.js";
import { conflict, forbidden, notFound, preconditionFailed } from "../errors.js";
import { Organization } from "../organizations/organization.entity.js";
import { normalizeEmail } from "../organizations/organization.service.js";
import type { AccessPolicy } from "../policy.js";
import { singleLine } from "../validation.js";
import type { Viewer } from "../viewer.js";
import { ApiToken } from "./api-token.entity.js";
import { Officer } from "./officer.entity.js";
import { hashApiToken, newApiToken } from "./tokens.js";

export interface RegisterOfficer {
  organizationId: string;
  name: string;
  email: string;
}

export interface ApiTokenGrant {
  id: string;
  token: string;
  officer: Officer;
  label: string;
  createdAt: Date;
}

/** At least this many active officers make an organization ready for key exchange. */
export const MIN_ACTIVE_OFFICERS = 2;
const LAST_USED_RESOLUTION_MS = 60_000;

const validatePersonName = (raw: string) => singleLine(raw, { field: "name", reason: "INVALID_NAME", max: 200 });
const validateLabel = (raw: string) => singleLine(raw, { field: "label", reason: "INVALID_LABEL", max: 100 });

export class OfficerService {
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly mutations: Mutations,
    private readonly bus: EventBus,
  ) {}

  async register(viewer: Viewer | null, input: RegisterOfficer): Promise<Officer> {
    return this.mutations.run(
      {
        action: "officer.register",
        targetType: "Officer",
        actor: viewer,
        details: { organizationId: input.organizationId },
      },
      async ({ em, audit, notify }) => {
        const v = this.policy.requireViewer(viewer);
        if (!(await this.policy.canReadOrganization(v, input.organizationId))) throw notFound("organization");
        // Filed under the organization only once it is the actor's to see: a probe from another tenant is not its business.
        audit.organizationId = input.organizationId;
        if (!this.policy.canManageOfficers(v, input.organizationId)) {
          throw forbidden("only the organization's own officers or KMS operators may register its officers");
        }
        const org = await em.findOne(Organization, { where: { id: input.organizationId } });
        if (!org) throw notFound("organization");
        const name = validatePersonName(input.name);
        const email = normalizeEmail(input.email);
        audit.details = { organizationId: org.id, email };
        const taken = await em.findOne(Officer, { where: { organizationId: org.id, email } });
        if (taken) throw conflict("EMAIL_TAKEN", `${email} is already registered for ${org.name}`);
        const officer = em.create(Officer, {
          id: randomUUID(),
          organizationId: org.id,
          name,
          email,
          role: org.kind === OrganizationKind.KMS ? Role.KMS_OPERATOR : Role.SECURITY_OFFICER,
          status: OfficerStatus.ACTIVE,
          createdAt: this.clock.now(),
          deactivatedAt: null,
        });
        await em.insert(Officer, officer);
        audit.targetId = officer.id;
        await notify({
          type: NotificationType.OFFICER_REGISTERED,
          organizationId: org.id,
          officerId: officer.id,
          message: `${name} <${email}> was registered as a security officer of ${org.name}.`,
        });
        return officer;
      },
    );
  }

  async deactivate(viewer: Viewer | null, officerId: string): Promise<Officer> {
    return this.mutations.run(
      { action: "officer.deactivate", targetType: "Officer", targetId: officerId, actor: viewer },
      async ({ em, audit, notify, afterCommit }) => {
        const v = this.policy.requireViewer(viewer);
        const target = await em.findOne(Officer, { where: { id: officerId } });
        if (!target || !(await this.policy.canReadOrganization(v, target.organizationId))) throw notFound("officer");
        audit.organizationId = target.organizationId;
        if (!this.policy.canManageOfficers(v, target.organizationId)) {
          throw forbidden("only another officer of the same organization or a KMS operator may deactivate an officer");
        }
        if (!this.policy.isOperator(v) && target.id === v.officer.id) {
          throw forbidden("an officer cannot deactivate themself; another officer of the organization must");
        }
        if (target.status !== OfficerStatus.ACTIVE) throw conflict("ALREADY_DEACTIVATED", "the officer is already deactivated");
        if (target.role === Role.KMS_OPERATOR) {
          const operators = await em.count(Officer, { where: { role: Role.KMS_OPERATOR, status: OfficerStatus.ACTIVE } });
          if (operators <= 1) throw preconditionFailed("LAST_OPERATOR", "the last active KMS operator cannot be deactivated");
        }
        const now = this.clock.now();
        const result = await em
          .createQueryBuilder()
          .update(Officer)
          .set({ status: OfficerStatus.DEACTIVATED, deactivatedAt: now })
          .where("id = :id AND status = :active", { id: target.id, active: OfficerStatus.ACTIVE })
          .execute();
        if (!result.affected) throw conflict("ALREADY_DEACTIVATED", "the officer is already deactivated");
        target.status = OfficerStatus.DEACTIVATED;
        target.deactivatedAt = now;
        const org = await em.findOneOrFail(Organization, { where: { id: target.organizationId } });
        await notify({
          type: NotificationType.OFFICER_DEACTIVATED,
          organizationId: org.id,
          officerId: target.id,
          message: `${target.name} <${target.email}> is no longer a security officer of ${org.name}.`,
        });
        afterCommit(() => void this.bus.publish("access.revoked", { officerId: target.id }));
        return target;
      },
    );
  }

  async createApiToken(viewer: Viewer | null, officerId: string, labelInput: string): Promise<ApiTokenGrant> {
    return this.mutations.run(
      { action: "token.create", targetType: "ApiToken", actor: viewer, details: { officerId } },
      async ({ em, audit }) => {
        const v = this.policy.requireViewer(viewer);
        const officer = await em.findOne(Officer, { where: { id: officerId } });
        if (!officer || !(await this.policy.canReadOrganization(v, officer.organizationId))) throw notFound("officer");
        audit.organizationId = officer.organizationId;
        if (!this.policy.isOperator(v) && officer.id !== v.officer.id) {
          throw forbidden("officers create tokens for themselves; operators for anyone");
        }
        if (officer.status !== OfficerStatus.ACTIVE) throw conflict("OFFICER_DEACTIVATED", "the officer is deactivated");
        const label = validateLabel(labelInput);
        const { token, row } = await this.insertToken(em, officer.id, label);
        audit.targetId = row.id;
        audit.details = { officerId, label };
        return { id: row.id, token, officer, label, createdAt: row.createdAt };
      },
    );
  }

  /** Used by bootstrap too: the token is returned once and only its hash is kept. */
  async insertToken(
    em: import("typeorm").EntityManager,
    officerId: string,
    label: string,
    token = newApiToken(),
  ): Promise<{ token: string; row: ApiToken }> {
    const row = em.create(ApiToken, {
      id: randomUUID(),
      officerId,
      tokenHash: hashApiToken(token),
      label,
      createdAt: this.clock.now(),
      lastUsedAt: null,
      revokedAt: null,
    });
    await em.insert(ApiToken, row);
    return { token, row };
  }

  async revokeApiToken(viewer: Viewer | null, tokenId: string): Promise<boolean> {
    return this.mutations.run(
      { action: "token.revoke", targetType: "ApiToken", targetId: tokenId, actor: viewer },
      async ({ em, audit, afterCommit }) => {
        const v = this.policy.requireViewer(viewer);
        const token = await em.findOne(ApiToken, { where: { id: tokenId } });
        const owner = token ? await em.findOne(Officer, { where: { id: token.officerId } }) : null;
        if (!token || !owner || !(await this.policy.canReadOrganization(v, owner.organizationId))) throw notFound("API token");
        audit.organizationId = owner.organizationId;
        if (!this.policy.isOperator(v) && owner.id !== v.officer.id) {
          throw forbidden("officers revoke their own tokens; operators anyone's");
        }
        const result = await em
          .createQueryBuilder()
          .update(ApiToken)
          .set({ revokedAt: this.clock.now() })
          .where("id = :id AND revokedAt IS NULL", { id: tokenId })
          .execute();
        if (!result.affected) throw conflict("ALREADY_REVOKED", "the token is already revoked");
        audit.details = { officerId: owner.id, label: token.label };
        afterCommit(() => void this.bus.publish("access.revoked", { tokenId }));
        return true;
      },
    );
  }

  /** Resolves a bearer token to a viewer, or null when unknown, revoked or its officer deactivated. */
  async authenticate(token: string): Promise<Viewer | null> {
    // One statement for token, officer and organization: this runs for every request and WebSocket.
    const row = (await this.db.manager
      .createQueryBuilder(ApiToken, "t")
      .innerJoinAndMapOne("t.officer", Officer, "o", "o.id = t.officerId")
      .innerJoinAndMapOne("t.organization", Organization, "g", "g.id = o.organizationId")
      .where("t.tokenHash = :hash AND t.revokedAt IS NULL AND o.status = :active", { hash: hashApiToken(token), active: OfficerStatus.ACTIVE })
      .getOne()) as (ApiToken & { officer: Officer; organization: Organization }) | null;
    if (!row) return null;
    this.touch(row);
    return { officer: row.officer, organization: row.organization, role: row.officer.role, tokenId: row.id };
  }

  /**
   * Best effort, outside the request's own work: lastUsedAt at a one-minute
   * resolution, written once per token and minute even when many requests
   * (a burst of WebSocket connections) arrive together.
   */
  private touch(token: ApiToken): void {
    const now = this.clock.now();
    const last = Math.max(token.lastUsedAt?.getTime() ?? 0, this.lastUsedWritten.get(token.id) ?? 0);
    if (now.getTime() - last <= LAST_USED_RESOLUTION_MS) return;
    if (this.lastUsedWritten.size > 10_000) this.lastUsedWritten.clear();
    this.lastUsedWritten.set(token.id, now.getTime());
    void this.db.transaction((tx) => tx.em.update(ApiToken, { id: token.id }, { lastUsedAt: now })).catch(() => undefined);
  }

  /** Whether a viewer still has access (for open WebSocket connections). */
  async stillValid(viewer: Viewer): Promise<boolean> {
    const token = await this.db.manager.findOne(ApiToken, { where: { id: viewer.tokenId } });
    if (!token || token.revokedAt) return false;
    const officer = await this.db.manager.findOne(Officer, { where: { id: viewer.officer.id } });
    return officer?.status === OfficerStatus.ACTIVE;
  }

  async listForOrganizations(organizationIds: readonly string[], includeDeactivated: boolean): Promise<Officer[]> {
    if (organizationIds.length === 0) return [];
    return this.db.manager.find(Officer, {
      where: { organizationId: In([...organizationIds]), ...(includeDeactivated ? {} : { status: OfficerStatus.ACTIVE }) },
      order: { createdAt: "ASC", id: "ASC" },
    });
  }

}
