import type { Mutations } from "../kernel/unit-of-work.js";
import { newId } from "../kernel/ids.js";
import type { Clock } from "../kernel/clock.js";
import { type Database, inListChunks } from "../db/data-source.js";
import { entitiesOf } from "../db/rows.js";
import { NotificationType, OfficerStatus, OrganizationKind, Role } from "../kernel/domain.js";
import type { EventBus } from "../kernel/events.js";
import { badInput, conflict, forbidden, notFound, preconditionFailed } from "../kernel/errors.js";
import { Organization } from "../organizations/organization.entity.js";
import { normalizeEmail } from "../organizations/organization.service.js";
import type { AccessPolicy } from "../policy.js";
import { singleLine } from "../validation.js";
import type { Viewer } from "../viewer.js";
import { ApiToken } from "./api-token.entity.js";
import { EnrollmentCode } from "./enrollment-code.entity.js";
import { type EnrollmentMailer, type EnrollmentThrottle, hashEnrollmentCode, newEnrollmentCode } from "./enrollment.js";
import { Officer } from "./officer.entity.js";
import type { TokenCache } from "./token-cache.js";
import { hashApiToken, newApiToken } from "./tokens.js";
import { lockName, lockOrganization } from "../kernel/locks.js";
import { DAY_MS } from "../kernel/time.js";

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
  expiresAt: Date | null;
}

export interface EnrollmentOptions {
  /** How long a code works. */
  ttlMs: number;
  mailer: EnrollmentMailer;
  throttle: EnrollmentThrottle;
}

/** At least this many active and enrolled officers make an organization ready for key exchange. */
export const MIN_ACTIVE_OFFICERS = 2;
const LAST_USED_RESOLUTION_MS = 60_000;

const validatePersonName = (raw: string) => singleLine(raw, { field: "name", reason: "INVALID_NAME", max: 200 });
const validateLabel = (raw: string) => singleLine(raw, { field: "label", reason: "INVALID_LABEL", max: 100 });
const MAX_TOKEN_DAYS = 3650;
const ENROLLMENT_CODE_INVALID = "ENROLLMENT_CODE_INVALID";
/** One message for every way a code fails (unknown, used, expired, superseded): the answer tells a guesser nothing. */
const invalidCode = () => badInput(ENROLLMENT_CODE_INVALID, "this enrollment code is not valid: it is unknown, used, expired or replaced by a newer one");

export class OfficerService {
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly mutations: Mutations,
    private readonly bus: EventBus,
    private readonly enrollment: EnrollmentOptions,
    /** Null where the bus does not reach every instance that can revoke (app.ts decides). */
    private readonly tokenCache: TokenCache | null = null,
  ) {}

  async register(viewer: Viewer | null, input: RegisterOfficer): Promise<Officer> {
    return this.mutations.run(
      {
        action: "officer.register",
        targetType: "Officer",
        actor: viewer,
        details: { organizationId: input.organizationId },
      },
      async ({ em, audit, notify, afterCommit }) => {
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
        await lockName(em, `officer-email ${org.id} ${email}`); // two registrations of one email: the second sees the first
        const taken = await em.findOne(Officer, { where: { organizationId: org.id, email } });
        if (taken) throw conflict("EMAIL_TAKEN", `${email} is already registered for ${org.name}`);
        const officer = em.create(Officer, {
          id: newId(),
          organizationId: org.id,
          name,
          email,
          role: org.kind === OrganizationKind.KMS ? Role.KMS_OPERATOR : Role.SECURITY_OFFICER,
          status: OfficerStatus.ACTIVE,
          createdAt: this.clock.now(),
          deactivatedAt: null,
          enrolledAt: null,
        });
        await em.insert(Officer, officer);
        audit.targetId = officer.id;
        await this.issueEnrollmentCode(em, officer, org, afterCommit);
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
    let signalled: Promise<void> | undefined;
    const officer = await this.mutations.run(
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
        // Deactivations in one organization (and CSR submissions, which count its officers) take their turn.
        await lockOrganization(em, target.organizationId);
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
        afterCommit(() => (signalled = this.bus.publish("access.revoked", { officerId: target.id }, { confirm: true })));
        return target;
      },
    );
    // Answered once every instance's bus has the signal: the next request anywhere finds the officer's tokens gone from its cache.
    await signalled;
    return officer;
  }

  /** Tokens are personal: an officer creates them for themself only, operators included. */
  async createApiToken(viewer: Viewer | null, officerId: string, labelInput: string, expiresInDays?: number | null): Promise<ApiTokenGrant> {
    return this.mutations.run(
      { action: "token.create", targetType: "ApiToken", actor: viewer, details: { officerId } },
      async ({ em, audit }) => {
        const v = this.policy.requireViewer(viewer);
        const officer = await em.findOne(Officer, { where: { id: officerId } });
        if (!officer || !(await this.policy.canReadOrganization(v, officer.organizationId))) throw notFound("officer");
        audit.organizationId = officer.organizationId;
        if (officer.id !== v.officer.id) {
          throw forbidden("nobody can create a token for somebody else: each officer enrolls and creates their own tokens");
        }
        if (officer.status !== OfficerStatus.ACTIVE) throw conflict("OFFICER_DEACTIVATED", "the officer is deactivated");
        const label = validateLabel(labelInput);
        const expiresAt = this.tokenExpiry(expiresInDays);
        const { token, row } = await this.insertToken(em, officer.id, label, newApiToken(), expiresAt);
        audit.targetId = row.id;
        audit.details = { officerId, label, ...(expiresAt ? { expiresAt: expiresAt.toISOString() } : {}) };
        return { id: row.id, token, officer, label, createdAt: row.createdAt, expiresAt };
      },
    );
  }

  private tokenExpiry(expiresInDays: number | null | undefined): Date | null {
    if (expiresInDays == null) return null;
    if (!Number.isInteger(expiresInDays) || expiresInDays < 1 || expiresInDays > MAX_TOKEN_DAYS) {
      throw badInput("INVALID_EXPIRY", `expiresInDays must be a whole number of days between 1 and ${MAX_TOKEN_DAYS}`);
    }
    return new Date(this.clock.now().getTime() + expiresInDays * DAY_MS);
  }

  /**
   * Stores the hash of a fresh code for an officer who has not enrolled,
   * replacing any earlier code, and mails the code after commit.
   */
  private async issueEnrollmentCode(
    em: import("typeorm").EntityManager,
    officer: Officer,
    org: Organization,
    afterCommit: (hook: () => void) => void,
  ): Promise<Date> {
    const code = newEnrollmentCode();
    const now = this.clock.now();
    const expiresAt = new Date(now.getTime() + this.enrollment.ttlMs);
    await em.delete(EnrollmentCode, { officerId: officer.id });
    await em.insert(EnrollmentCode, { officerId: officer.id, codeHash: hashEnrollmentCode(code), expiresAt, createdAt: now });
    const letter = { to: officer.email, officerName: officer.name, organizationName: org.name, code, expiresAt };
    afterCommit(() => this.enrollment.mailer.send(letter, officer.id));
    return expiresAt;
  }

  /** Emails a fresh code to an officer who has not enrolled yet; the earlier code stops working. */
  async resendEnrollment(viewer: Viewer | null, officerId: string): Promise<Officer> {
    return this.mutations.run(
      { action: "officer.enrollment.resend", targetType: "Officer", targetId: officerId, actor: viewer },
      async ({ em, audit, afterCommit }) => {
        const v = this.policy.requireViewer(viewer);
        const officer = await em.findOne(Officer, { where: { id: officerId } });
        if (!officer || !(await this.policy.canReadOrganization(v, officer.organizationId))) throw notFound("officer");
        audit.organizationId = officer.organizationId;
        if (!this.policy.canManageOfficers(v, officer.organizationId)) {
          throw forbidden("only the organization's own officers or KMS operators may resend an enrollment code");
        }
        if (officer.status !== OfficerStatus.ACTIVE) throw conflict("OFFICER_DEACTIVATED", "the officer is deactivated");
        if (officer.enrolledAt) throw conflict("ALREADY_ENROLLED", "the officer has already enrolled");
        const org = await em.findOneOrFail(Organization, { where: { id: officer.organizationId } });
        const expiresAt = await this.issueEnrollmentCode(em, officer, org, afterCommit);
        audit.details = { email: officer.email, codeExpiresAt: expiresAt.toISOString() };
        return officer;
      },
    );
  }

  /**
   * No token: exchanges an enrollment code, once, for the officer's first
   * token. Every failure looks the same; failures per client address are throttled.
   */
  async enroll(clientAddress: string, code: string, labelInput: string): Promise<ApiTokenGrant> {
    return this.enrollment.throttle.attempt(clientAddress, ENROLLMENT_CODE_INVALID, () =>
      this.mutations.run({ action: "officer.enroll", targetType: "Officer", actor: null }, async ({ em, audit, notify }) => {
        const label = validateLabel(labelInput);
        const now = this.clock.now();
        const row = code.length <= 200 ? await em.findOne(EnrollmentCode, { where: { codeHash: hashEnrollmentCode(code) } }) : null;
        if (!row || row.expiresAt.getTime() <= now.getTime()) throw invalidCode();
        const officer = await em.findOne(Officer, { where: { id: row.officerId } });
        if (!officer || officer.status !== OfficerStatus.ACTIVE || officer.enrolledAt) throw invalidCode();
        audit.targetId = officer.id;
        audit.organizationId = officer.organizationId;
        // Guarded: of two attempts with the same code, one deletes the row and the other finds nothing to delete.
        const used = await em.delete(EnrollmentCode, { officerId: officer.id, codeHash: row.codeHash });
        if (!used.affected) throw invalidCode();
        const enrolled = await em
          .createQueryBuilder()
          .update(Officer)
          .set({ enrolledAt: now })
          .where("id = :id AND enrolledAt IS NULL AND status = :active", { id: officer.id, active: OfficerStatus.ACTIVE })
          .execute();
        if (!enrolled.affected) throw invalidCode();
        officer.enrolledAt = now;
        const { token, row: tokenRow } = await this.insertToken(em, officer.id, label);
        audit.details = { tokenId: tokenRow.id, label };
        const org = await em.findOneOrFail(Organization, { where: { id: officer.organizationId } });
        await notify({
          type: NotificationType.OFFICER_ENROLLED,
          organizationId: org.id,
          officerId: officer.id,
          message: `${officer.name} <${officer.email}> enrolled as a security officer of ${org.name}.`,
        });
        return { id: tokenRow.id, token, officer, label, createdAt: tokenRow.createdAt, expiresAt: null };
      }),
    );
  }

  /** Used by bootstrap too: the token is returned once and only its hash is kept. */
  async insertToken(
    em: import("typeorm").EntityManager,
    officerId: string,
    label: string,
    token = newApiToken(),
    expiresAt: Date | null = null,
  ): Promise<{ token: string; row: ApiToken }> {
    const row = em.create(ApiToken, {
      id: newId(),
      officerId,
      tokenHash: hashApiToken(token),
      label,
      createdAt: this.clock.now(),
      lastUsedAt: null,
      revokedAt: null,
      expiresAt,
    });
    await em.insert(ApiToken, row);
    return { token, row };
  }

  async revokeApiToken(viewer: Viewer | null, tokenId: string): Promise<boolean> {
    let signalled: Promise<void> | undefined;
    const revoked = await this.mutations.run(
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
        afterCommit(() => (signalled = this.bus.publish("access.revoked", { tokenId }, { confirm: true })));
        return true;
      },
    );
    // As for deactivate: answered once every instance has emptied its cache of the token (publish never throws; it logs an outage).
    await signalled;
    return revoked;
  }

  /**
   * Resolves a bearer token to a viewer, or null when unknown, revoked,
   * expired or its officer deactivated. Through the token cache when there is
   * one (token-cache.ts says what a cached viewer holds and what empties it).
   */
  async authenticate(token: string): Promise<Viewer | null> {
    const hash = hashApiToken(token);
    const cache = this.tokenCache?.usable() ? this.tokenCache : null;
    const generation = cache?.generation ?? 0;
    if (cache) {
      // No wait for signals here: a revocation answers only once every instance has confirmed it (a confirmed publish).
      const hit = cache.get(hash);
      if (hit) {
        this.touch(hit.viewer.tokenId, hit.lastUsedAt);
        return hit.viewer;
      }
    }
    // One statement for token, officer and organization: this runs for every request and WebSocket the cache does not answer.
    const row = (await this.db.manager
      .createQueryBuilder(ApiToken, "t")
      .innerJoinAndMapOne("t.officer", Officer, "o", "o.id = t.officerId")
      .innerJoinAndMapOne("t.organization", Organization, "g", "g.id = o.organizationId")
      .where("t.tokenHash = :hash AND t.revokedAt IS NULL AND o.status = :active", { hash, active: OfficerStatus.ACTIVE })
      .andWhere("(t.expiresAt IS NULL OR t.expiresAt > :now)", { now: this.clock.now().toISOString() })
      .getOne()) as (ApiToken & { officer: Officer; organization: Organization }) | null;
    if (!row) return null;
    const viewer: Viewer = { officer: row.officer, organization: row.organization, role: row.officer.role, tokenId: row.id, tokenExpiresAt: row.expiresAt };
    // Not kept when access was revoked anywhere while it was read: the row may predate that revocation.
    cache?.set(hash, viewer, row.lastUsedAt, generation);
    this.touch(row.id, row.lastUsedAt);
    return viewer;
  }

  /** Whether the viewer's token has expired by now (no database read: open WebSockets are swept with it). */
  expired(viewer: Viewer): boolean {
    return viewer.tokenExpiresAt != null && viewer.tokenExpiresAt.getTime() <= this.clock.now().getTime();
  }

  /**
   * Best effort, outside the request's own work: lastUsedAt at a one-minute
   * resolution, written once per token and minute even when many requests
   * (a burst of WebSocket connections) arrive together.
   */
  private touch(tokenId: string, lastUsedAt: Date | null): void {
    const now = this.clock.now();
    const last = Math.max(lastUsedAt?.getTime() ?? 0, this.lastUsedWritten.get(tokenId) ?? 0);
    if (now.getTime() - last <= LAST_USED_RESOLUTION_MS) return;
    if (this.lastUsedWritten.size > 10_000) this.lastUsedWritten.clear();
    this.lastUsedWritten.set(tokenId, now.getTime());
    void this.db.transaction((tx) => tx.em.update(ApiToken, { id: tokenId }, { lastUsedAt: now })).catch(() => undefined);
  }

  /** Whether a viewer still has access (for open WebSocket connections). */
  async stillValid(viewer: Viewer): Promise<boolean> {
    const token = await this.db.manager.findOne(ApiToken, { where: { id: viewer.tokenId } });
    if (!token || token.revokedAt || this.expired(viewer)) return false;
    const officer = await this.db.manager.findOne(Officer, { where: { id: viewer.officer.id } });
    return officer?.status === OfficerStatus.ACTIVE;
  }

  async listForOrganizations(organizationIds: readonly string[], includeDeactivated: boolean): Promise<Officer[]> {
    const officers: Officer[] = [];
    // Each organization's officers come from one chunk, in their order.
    for (const part of inListChunks(organizationIds)) {
      const qb = this.db.manager.getRepository(Officer).createQueryBuilder("o").where("o.organizationId IN (:...orgs)", { orgs: part });
      if (!includeDeactivated) qb.andWhere("o.status = :active", { active: OfficerStatus.ACTIVE });
      officers.push(...(await entitiesOf(qb.orderBy("o.createdAt", "ASC").addOrderBy("o.id", "ASC"))));
    }
    return officers;
  }

  /**
   * How many officers of each organization are active, and how many of those
   * have enrolled: one grouped count (the officers_org index) rather than the
   * officers themselves, for activeOfficerCount and keyExchangeReady.
   */
  async activeCounts(organizationIds: readonly string[]): Promise<Map<string, { active: number; enrolled: number }>> {
    const counts = new Map<string, { active: number; enrolled: number }>();
    for (const part of inListChunks(organizationIds)) {
      const rows = await this.db.manager
        .getRepository(Officer)
        .createQueryBuilder("o")
        .select("o.organizationId", "organizationId")
        .addSelect("COUNT(*)", "active")
        .addSelect("COUNT(o.enrolledAt)", "enrolled")
        .where("o.organizationId IN (:...orgs) AND o.status = :active", { orgs: part, active: OfficerStatus.ACTIVE })
        .groupBy("o.organizationId")
        .getRawMany<{ organizationId: string; active: string | number; enrolled: string | number }>();
      for (const r of rows) counts.set(r.organizationId, { active: Number(r.active), enrolled: Number(r.enrolled) });
    }
    return counts;
  }

}
