import { constants, promises as fs } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { Mutations } from "../kernel/unit-of-work.js";
import { newId } from "../kernel/ids.js";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { OfficerStatus, OrganizationKind, Role } from "../kernel/domain.js";
import { conflict, DomainError } from "../kernel/errors.js";
import { Officer } from "../officers/officer.entity.js";
import type { OfficerService } from "../officers/officer.service.js";
import { newApiToken } from "../officers/tokens.js";
import { Organization } from "./organization.entity.js";
import { lockName } from "../kernel/locks.js";

export const KMS_ORGANIZATION_NAME = "KeyPortal KMS";

export interface BootstrapOptions {
  dataDir: string;
  /** KEYPORTAL_BOOTSTRAP_TOKEN; otherwise a random token is written to <dataDir>/bootstrap-token. */
  token?: string;
}

/**
 * On an empty database: the KMS organization and a first operator with a
 * token. Runs at every start and does nothing once the KMS organization
 * exists, so restarts (and other instances) never create a second operator.
 */
export async function bootstrap(
  deps: { db: Database; clock: Clock; mutations: Mutations; officers: OfficerService; logger: Logger },
  opts: BootstrapOptions,
): Promise<{ created: boolean }> {
  const existing = await deps.db.manager.findOne(Organization, { where: { kind: OrganizationKind.KMS } });
  if (existing) return { created: false };
  const token = opts.token ?? newApiToken();
  let created = false;
  try {
    await deps.mutations.run({ action: "system.bootstrap", targetType: "Organization", actor: null }, async ({ em, audit }) => {
      // Checked again inside the transaction, after waiting for any other instance's attempt: another instance
      // may have won the race. Losing is a refusal (audited as such), not a second successful bootstrap.
      await lockName(em, "bootstrap");
      if (await em.findOne(Organization, { where: { kind: OrganizationKind.KMS } })) {
        throw conflict("ALREADY_BOOTSTRAPPED", "another instance created the KMS organization first");
      }
      const now = deps.clock.now();
      const org = em.create(Organization, {
        id: newId(),
        name: KMS_ORGANIZATION_NAME,
        kind: OrganizationKind.KMS,
        contactEmail: "kms@keyportal.invalid",
        country: "US",
        createdAt: now,
      });
      await em.insert(Organization, org);
      const operator = em.create(Officer, {
        id: newId(),
        organizationId: org.id,
        name: "Bootstrap operator",
        email: "operator@keyportal.invalid",
        role: Role.KMS_OPERATOR,
        status: OfficerStatus.ACTIVE,
        createdAt: now,
        deactivatedAt: null,
        // The one officer who does not enroll: its token is the bootstrap token.
        enrolledAt: now,
      });
      await em.insert(Officer, operator);
      const { row } = await deps.officers.insertToken(em, operator.id, "bootstrap", token);
      audit.targetId = org.id;
      audit.organizationId = org.id;
      audit.details = { operatorId: operator.id, tokenId: row.id, tokenSource: opts.token ? "KEYPORTAL_BOOTSTRAP_TOKEN" : "file" };
      created = true;
    });
  } catch (error) {
    if (!(error instanceof DomainError && error.reason === "ALREADY_BOOTSTRAPPED")) throw error;
    return { created: false };
  }
  if (created && !opts.token) {
    const file = path.join(opts.dataDir, "bootstrap-token");
    await fs.mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
    const handle = await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      await handle.writeFile(`${token}\n`);
      await handle.chmod(0o600);
    } finally {
      await handle.close();
    }
    deps.logger.warn({ file }, "created the first KMS operator; its API token is in this file (mode 0600): use it, then delete the file");
  } else if (created) {
    deps.logger.info("created the first KMS operator with the token from KEYPORTAL_BOOTSTRAP_TOKEN");
  }
  return { created };
}
