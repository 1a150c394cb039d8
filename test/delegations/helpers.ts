import type { TestOrganization } from "../support/organizations.js";
import type { TestServer } from "../support/server.js";

export const DELEGATION_FIELDS = `id status kinds environment note declineReason requestedAt decidedAt revokedAt
  participant { id } msp { id } requestedBy { id } decidedBy { id } revokedBy { id }`;
export const REQUEST = `mutation($input: RequestDelegationInput!) { requestDelegation(input: $input) { ${DELEGATION_FIELDS} } }`;
export const APPROVE = `mutation($id: ID!) { approveDelegation(delegationId: $id) { ${DELEGATION_FIELDS} } }`;
export const DECLINE = `mutation($id: ID!, $reason: String) { declineDelegation(delegationId: $id, reason: $reason) { ${DELEGATION_FIELDS} } }`;
export const REVOKE_DELEGATION = `mutation($id: ID!) { revokeDelegation(delegationId: $id) { ${DELEGATION_FIELDS} } }`;

export interface DelegationView {
  id: string;
  status: string;
  kinds: string[];
  environment: string;
  note: string | null;
  declineReason: string | null;
  requestedAt: string;
  decidedAt: string | null;
  revokedAt: string | null;
  participant: { id: string };
  msp: { id: string };
  requestedBy: { id: string };
  decidedBy: { id: string } | null;
  revokedBy: { id: string } | null;
}

/** requestDelegation as the operator; returns the delegation. */
export async function requestDelegation(
  server: TestServer,
  participant: TestOrganization,
  msp: TestOrganization,
  opts: { kinds?: string[]; environment?: string; note?: string } = {},
): Promise<DelegationView> {
  const { requestDelegation: d } = await server.ok<{ requestDelegation: DelegationView }>(REQUEST, {
    input: { participantId: participant.id, mspId: msp.id, kinds: opts.kinds ?? ["MTLS_CLIENT"], environment: opts.environment ?? "MTF", note: opts.note ?? null },
  });
  return d;
}

/** Requested by the operator and approved by the participant's first officer. */
export async function activeDelegation(
  server: TestServer,
  participant: TestOrganization,
  msp: TestOrganization,
  opts: { kinds?: string[]; environment?: string } = {},
): Promise<DelegationView> {
  const requested = await requestDelegation(server, participant, msp, opts);
  const { approveDelegation } = await server.ok<{ approveDelegation: DelegationView }>(APPROVE, { id: requested.id }, participant.officers[0]!.token);
  return approveDelegation;
}
