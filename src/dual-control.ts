import type { EntityManager } from "typeorm";
import type { Environment } from "./kernel/domain.js";
import { OfficerStatus, Role } from "./kernel/domain.js";
import { preconditionFailed } from "./kernel/errors.js";
import { Officer } from "./officers/officer.entity.js";
import type { Viewer } from "./viewer.js";

/**
 * Dual control (KEYPORTAL_DUAL_CONTROL): in the environments listed, a
 * sensitive key operation (signing a CSR, rotating a KMS certificate) needs
 * two different operators: one approves first, another then acts.
 */
export class DualControl {
  private readonly environments: ReadonlySet<string>;

  constructor(environments: readonly Environment[] | readonly string[]) {
    this.environments = new Set(environments);
  }

  appliesTo(environment: Environment): boolean {
    return this.environments.has(environment);
  }

  /**
   * Throws unless `approvedById` names an operator, still active, other than
   * the one about to act: SECOND_APPROVAL_REQUIRED without such an approval,
   * SAME_OPERATOR when the approver is the one acting.
   */
  async assertApprovedByAnother(em: EntityManager, approvedById: string | null, actor: Viewer, what: string): Promise<void> {
    if (!approvedById) {
      throw preconditionFailed("SECOND_APPROVAL_REQUIRED", `${what} is under dual control: another operator must approve it first`);
    }
    if (approvedById === actor.officer.id) {
      throw preconditionFailed("SAME_OPERATOR", `${what} was approved by you: under dual control a different operator must complete it`);
    }
    const approver = await em.findOne(Officer, { where: { id: approvedById } });
    if (approver?.role !== Role.KMS_OPERATOR || approver.status !== OfficerStatus.ACTIVE) {
      throw preconditionFailed("SECOND_APPROVAL_REQUIRED", `the operator who approved ${what} is no longer active: another operator must approve it again`);
    }
  }
}
