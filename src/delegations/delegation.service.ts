import { Brackets, In, type EntityManager } from "typeorm";
import type { MutationScope, Mutations } from "../kernel/unit-of-work.js";
import { newId } from "../kernel/ids.js";
import type { Clock } from "../kernel/clock.js";
import { isUniqueViolation } from "../kernel/driver.js";
import type { Database } from "../db/data-source.js";
import { CertificateKind, DelegationStatus, Environment, NotificationType, OfficerStatus, OrganizationKind } from "../kernel/domain.js";
import { badInput, conflict, forbidden, notFound, type ReasonOf } from "../kernel/errors.js";
import type { EventBus } from "../kernel/events.js";
import { Organization } from "../organizations/organization.entity.js";
import type { AccessPolicy } from "../policy.js";
import { freeText } from "../validation.js";
import type { Viewer } from "../viewer.js";
import { Delegation } from "./delegation.entity.js";
import { lockOrganization } from "../kernel/locks.js";

export interface RequestDelegation {
  participantId: string;
  mspId: string;
  kinds: CertificateKind[];
  environment: Environment;
  note?: string | null;
}

const MAX_TEXT = 1000;
const OPEN = [DelegationStatus.PENDING_APPROVAL, DelegationStatus.ACTIVE];

/**
 * Delegations: the KMS (an operator) requests one, the participant's officers
 * approve or decline it, and the participant's officers or an operator revoke
 * it. The MSP cannot end a delegation itself: it asks the participant or the
 * KMS, so that the participant is never left without its key exchange
 * unannounced. Every transition is guarded in the database (UPDATE ... WHERE
 * status = ...), and the partial unique index delegations_open_unique keeps
 * one open delegation per participant, MSP and environment.
 */
export class DelegationService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly policy: AccessPolicy,
    private readonly mutations: Mutations,
    private readonly bus: EventBus,
  ) {}

  async request(viewer: Viewer | null, input: RequestDelegation): Promise<Delegation> {
    return this.mutations.run(
      {
        action: "delegation.request",
        targetType: "Delegation",
        actor: viewer,
        details: { participantId: input.participantId, mspId: input.mspId, kinds: input.kinds, environment: input.environment },
      },
      async ({ em, audit, notify }) => {
        const v = this.policy.requireOperator(viewer);
        const participant = await em.findOne(Organization, { where: { id: input.participantId } });
        if (!participant) throw notFound("participant organization");
        audit.organizationId = participant.id;
        if (participant.kind !== OrganizationKind.PARTICIPANT) throw badInput("INVALID_PARTICIPANT", `${participant.name} is not a PARTICIPANT organization`);
        const msp = await em.findOne(Organization, { where: { id: input.mspId } });
        if (!msp) throw notFound("MSP organization");
        if (msp.kind !== OrganizationKind.MSP) throw badInput("INVALID_MSP", `${msp.name} is not an MSP organization`);
        const kinds = validKinds(input.kinds);
        const note = validText(input.note, "note", "INVALID_NOTE");
        audit.details = { ...audit.details, kinds, ...(note ? { note } : {}) };
        await this.assertNoOpenDelegation(em, participant, msp, input.environment);
        const delegation = em.create(Delegation, {
          id: newId(),
          participantId: participant.id,
          mspId: msp.id,
          kinds,
          environment: input.environment,
          status: DelegationStatus.PENDING_APPROVAL,
          requestedById: v.officer.id,
          requestedAt: this.clock.now(),
          decidedById: null,
          decidedAt: null,
          note,
          declineReason: null,
          revokedById: null,
          revokedAt: null,
        });
        try {
          await em.insert(Delegation, delegation);
        } catch (error) {
          // The partial unique index: a concurrent request for the same pair and environment won.
          if (isUniqueViolation(error)) throw delegationExists(participant, msp, input.environment);
          throw error;
        }
        audit.targetId = delegation.id;
        await notify({
          type: NotificationType.DELEGATION_REQUESTED,
          organizationId: participant.id,
          secondOrganizationId: msp.id,
          environment: delegation.environment,
          delegationId: delegation.id,
          message:
            `The KMS asks ${participant.name} to confirm that ${msp.name} performs its key exchange for ${kinds.join(", ")} in ${delegation.environment}. ` +
            `A security officer of ${participant.name} must approve or decline this delegation in KeyPortal; until then ${msp.name} has no access.` +
            (note ? ` Note from the KMS: ${note}` : ""),
        });
        return delegation;
      },
    );
  }

  async approve(viewer: Viewer | null, delegationId: string): Promise<Delegation> {
    return this.mutations.run(
      { action: "delegation.approve", targetType: "Delegation", targetId: delegationId, actor: viewer },
      async (scope) => {
        const { v, delegation } = await this.participantDecision(scope, viewer, delegationId, "approve");
        const decidedAt = this.clock.now();
        await this.transition(scope.em, delegation, [DelegationStatus.PENDING_APPROVAL], { status: DelegationStatus.ACTIVE, decidedById: v.officer.id, decidedAt });
        const [participant, msp] = await this.parties(scope.em, delegation);
        await scope.notify({
          type: NotificationType.DELEGATION_APPROVED,
          organizationId: delegation.participantId,
          secondOrganizationId: delegation.mspId,
          environment: delegation.environment,
          delegationId: delegation.id,
          message: `${v.officer.name} approved the delegation: ${msp.name} now performs ${participant.name}'s key exchange for ${delegation.kinds.join(", ")} in ${delegation.environment}.`,
        });
        return delegation;
      },
    );
  }

  async decline(viewer: Viewer | null, delegationId: string, reason?: string | null): Promise<Delegation> {
    return this.mutations.run(
      { action: "delegation.decline", targetType: "Delegation", targetId: delegationId, actor: viewer },
      async (scope) => {
        const { v, delegation } = await this.participantDecision(scope, viewer, delegationId, "decline");
        const declineReason = validText(reason, "reason", "INVALID_REASON");
        if (declineReason) scope.audit.details = { ...scope.audit.details, reason: declineReason };
        const decidedAt = this.clock.now();
        await this.transition(scope.em, delegation, [DelegationStatus.PENDING_APPROVAL], {
          status: DelegationStatus.DECLINED,
          decidedById: v.officer.id,
          decidedAt,
          declineReason,
        });
        const [participant, msp] = await this.parties(scope.em, delegation);
        await scope.notify({
          type: NotificationType.DELEGATION_DECLINED,
          organizationId: delegation.participantId,
          secondOrganizationId: delegation.mspId,
          environment: delegation.environment,
          delegationId: delegation.id,
          message: `${v.officer.name} declined the delegation of ${participant.name}'s key exchange in ${delegation.environment} to ${msp.name}${declineReason ? `: ${declineReason}` : "."}`,
        });
        return delegation;
      },
    );
  }

  /** Participant officers or operators; the MSP loses access when this commits (and live subscriptions are told at once). */
  async revoke(viewer: Viewer | null, delegationId: string): Promise<Delegation> {
    return this.mutations.run(
      { action: "delegation.revoke", targetType: "Delegation", targetId: delegationId, actor: viewer },
      async (scope) => {
        const v = this.policy.requireViewer(viewer);
        const delegation = await this.readable(scope.em, v, delegationId);
        scope.audit.organizationId = delegation.participantId;
        if (!this.policy.isOperator(v) && !this.isActiveParticipantOfficer(v, delegation)) {
          throw forbidden("only an officer of the participant or a KMS operator may revoke a delegation");
        }
        const previous = delegation.status;
        await this.transition(scope.em, delegation, OPEN, { status: DelegationStatus.REVOKED, revokedById: v.officer.id, revokedAt: this.clock.now() });
        scope.audit.details = { ...scope.audit.details, previousStatus: previous };
        const [participant, msp] = await this.parties(scope.em, delegation);
        await scope.notify({
          type: NotificationType.DELEGATION_REVOKED,
          organizationId: delegation.participantId,
          secondOrganizationId: delegation.mspId,
          environment: delegation.environment,
          delegationId: delegation.id,
          message: `${v.officer.name} revoked the delegation of ${participant.name}'s key exchange in ${delegation.environment} to ${msp.name}; ${msp.name} no longer has access.`,
        });
        scope.afterCommit(() => {
          void this.bus.publish("access.revoked", { delegationId: delegation.id });
        });
        return delegation;
      },
    );
  }

  /** Query.delegations and Organization.delegations: operators all, officers those their organization granted or received. */
  async list(viewer: Viewer | null, filter: { status?: DelegationStatus | null; organizationId?: string | null }): Promise<Delegation[]> {
    const v = this.policy.requireViewer(viewer);
    const qb = this.db.manager.getRepository(Delegation).createQueryBuilder("d");
    if (!this.policy.isOperator(v)) {
      qb.andWhere(new Brackets((or) => or.where("d.participantId = :own").orWhere("d.mspId = :own")), { own: v.organization.id });
    }
    if (filter.organizationId) {
      qb.andWhere(new Brackets((or) => or.where("d.participantId = :org").orWhere("d.mspId = :org")), { org: filter.organizationId });
    }
    if (filter.status) qb.andWhere("d.status = :status", { status: filter.status });
    return qb.orderBy("d.requestedAt", "DESC").addOrderBy("d.id", "DESC").getMany();
  }


  private async participantDecision(scope: MutationScope, viewer: Viewer | null, delegationId: string, verb: string): Promise<{ v: Viewer; delegation: Delegation }> {
    const v = this.policy.requireViewer(viewer);
    const delegation = await this.readable(scope.em, v, delegationId);
    scope.audit.organizationId = delegation.participantId;
    if (!this.isActiveParticipantOfficer(v, delegation)) throw forbidden(`only an active officer of the participant may ${verb} a delegation`);
    return { v, delegation };
  }

  /** Another tenant's delegation is NOT_FOUND: its existence is not revealed. */
  private async readable(em: EntityManager, viewer: Viewer, delegationId: string): Promise<Delegation> {
    const delegation = await em.findOne(Delegation, { where: { id: delegationId } });
    if (!delegation || !this.policy.canReadDelegation(viewer, delegation)) throw notFound("delegation");
    return delegation;
  }

  private isActiveParticipantOfficer(viewer: Viewer, delegation: Delegation): boolean {
    return !this.policy.isOperator(viewer) && viewer.organization.id === delegation.participantId && viewer.officer.status === OfficerStatus.ACTIVE;
  }

  /** Guarded: 0 rows means someone else moved it first. */
  private async transition(em: EntityManager, delegation: Delegation, from: DelegationStatus[], set: Partial<Delegation> & { status: DelegationStatus }): Promise<void> {
    if (!from.includes(delegation.status)) throw notInState(delegation.status);
    const result = await em
      .createQueryBuilder()
      .update(Delegation)
      .set(set)
      .where('"id" = :id AND "status" IN (:...from)', { id: delegation.id, from })
      .execute();
    if (!result.affected) {
      const current = await em.findOne(Delegation, { where: { id: delegation.id } });
      throw notInState(current?.status ?? delegation.status);
    }
    Object.assign(delegation, set);
  }

  private async assertNoOpenDelegation(em: EntityManager, participant: Organization, msp: Organization, environment: Environment): Promise<void> {
    // Two requests for the same pair: the second waits and then sees the first (DELEGATION_EXISTS, not a unique violation).
    await lockOrganization(em, participant.id);
    const open = await em.count(Delegation, { where: { participantId: participant.id, mspId: msp.id, environment, status: In(OPEN) } });
    if (open > 0) throw delegationExists(participant, msp, environment);
  }

  private async parties(em: EntityManager, delegation: Delegation): Promise<[Organization, Organization]> {
    const participant = await em.findOneOrFail(Organization, { where: { id: delegation.participantId } });
    const msp = await em.findOneOrFail(Organization, { where: { id: delegation.mspId } });
    return [participant, msp];
  }
}

function validKinds(kinds: CertificateKind[]): CertificateKind[] {
  const known = new Set<string>(Object.values(CertificateKind));
  if (kinds.length === 0) throw badInput("INVALID_KINDS", "kinds must name at least one certificate kind");
  if (new Set(kinds).size !== kinds.length) throw badInput("INVALID_KINDS", "kinds must not repeat a certificate kind");
  if (!kinds.every((k) => known.has(k))) throw badInput("INVALID_KINDS", "kinds must be certificate kinds");
  return [...kinds];
}

const validText = (raw: string | null | undefined, field: string, reason: ReasonOf<"BAD_USER_INPUT">) => freeText(raw, { field, reason, max: MAX_TEXT });

function notInState(status: DelegationStatus) {
  if (status === DelegationStatus.REVOKED) return conflict("ALREADY_REVOKED", "the delegation is already revoked");
  return conflict("ALREADY_DECIDED", `the delegation is ${status.toLowerCase().replace("_", " ")}`);
}

const delegationExists = (participant: Organization, msp: Organization, environment: Environment) =>
  conflict("DELEGATION_EXISTS", `${participant.name} already has an open delegation to ${msp.name} in ${environment}`);
