import type { EntityManager } from "typeorm";

/**
 * Narrow locks for the invariants that span rows of concurrent mutations on
 * PostgreSQL, where mutations no longer commit one at a time
 * (docs/sequencer.md). Each holds until its transaction ends. On SQLite
 * transactions run one at a time on the one writing connection: no-ops.
 */
const isPostgres = (em: EntityManager) => em.connection.options.type === "postgres";

/**
 * The organization's row: FOR UPDATE by a change to what the organization
 * counts (its active officers, its open delegations), FOR SHARE by a
 * decision that relies on such a count (submitting a CSR).
 */
export async function lockOrganization(em: EntityManager, organizationId: string, mode: "update" | "share" = "update"): Promise<void> {
  if (!isPostgres(em)) return;
  await em.query(`SELECT id FROM organizations WHERE id = $1 ${mode === "share" ? "FOR SHARE" : "FOR UPDATE"}`, [organizationId]);
}

/** A public key (by fingerprint): whatever certifies or blocks it takes its turn. */
export function lockKey(em: EntityManager, publicKeyFingerprint: string): Promise<void> {
  return lockName(em, `key ${publicKeyFingerprint}`);
}

/** A value that must stay unique (an officer's email in an organization): the second claim waits and then sees the first. */
export function lockName(em: EntityManager, name: string): Promise<void> {
  if (!isPostgres(em)) return Promise.resolve();
  return em.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [name]).then(() => undefined);
}
