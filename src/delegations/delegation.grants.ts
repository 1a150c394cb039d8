import type { Database } from "../db/data-source.js";
import { DelegationStatus } from "../kernel/domain.js";
import type { DelegationGrant, DelegationGrants } from "../policy.js";
import { Delegation } from "./delegation.entity.js";

/**
 * Active delegations read from the table on every call: one indexed query
 * (delegations_msp), and no cache, so a revocation committed anywhere takes
 * effect on the very next check.
 */
export class DatabaseDelegationGrants implements DelegationGrants {
  constructor(private readonly db: Database) {}

  async activeForMsp(mspId: string): Promise<DelegationGrant[]> {
    const rows = await this.db.manager.find(Delegation, { where: { mspId, status: DelegationStatus.ACTIVE } });
    return rows.map(toGrant);
  }

  async activeForParticipant(participantId: string): Promise<DelegationGrant[]> {
    const rows = await this.db.manager.find(Delegation, { where: { participantId, status: DelegationStatus.ACTIVE } });
    return rows.map(toGrant);
  }
}

const toGrant = (d: Delegation): DelegationGrant => ({
  delegationId: d.id,
  participantId: d.participantId,
  mspId: d.mspId,
  kinds: [...d.kinds],
  environment: d.environment,
});
