import type { EntityManager } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { type Environment, RevocationReason } from "../kernel/domain.js";
import type { CrlEntry } from "../pki/crl.js";
import type { Authorities } from "./authorities.js";
import { Certificate } from "./certificate.entity.js";
import { CrlState } from "./crl-state.entity.js";
import { KmsCertificate } from "../kms/kms-certificate.entity.js";
import { DAY_MS } from "../kernel/time.js";

/** nextUpdate = thisUpdate + 7 days. */
export const CRL_VALIDITY_MS = 7 * DAY_MS;
/** A CRL older than this is re-signed when next served, long before its nextUpdate. */
export const CRL_REFRESH_AFTER_MS = DAY_MS;
/** Compare-and-swap retries when another instance rebuilt at the same moment. */
const MAX_ATTEMPTS = 5;

/** Which CA of an environment signs: the issuing CA (participants' and KMS certificates) or the root (the issuing CA). */
export type CrlIssuer = "issuing" | "root";

/** The crl_state row of a CRL: the environment for the issuing CA's (as before roots had CRLs), <ENV>-ROOT for the root's. */
const stateKey = (environment: Environment, issuer: CrlIssuer): string => (issuer === "root" ? `${environment}-ROOT` : environment);

export interface PublishedCrl {
  environment: Environment;
  issuer: CrlIssuer;
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  der: Uint8Array;
}

/**
 * The CRL of each environment, signed by that environment's issuing CA.
 *
 * Rebuilt inside every revocation's transaction (so the CRL served after the
 * mutation returns lists it) and whenever it is served more than a day after
 * its thisUpdate, so it is never served past its nextUpdate. The cRLNumber is
 * the crl_state row's, shared by every instance on the database; each rebuild
 * is a compare-and-swap on it, so numbers only grow and no two CRLs of an
 * environment share one.
 *
 * Contents: every revoked certificate of the environment that has not yet
 * expired at thisUpdate (RFC 5280 5.1: an entry may be removed once the
 * certificate has expired). A certificate revoked after it expired is
 * recorded as REVOKED but never needs to appear. The KMS's own certificates
 * retired before their notAfter are listed too (SUPERSEDED): retirement takes
 * them out of the valid set for relying parties that check the CRL as well.
 *
 * Each root publishes a CRL of its own (issuer "root"), with its own
 * cRLNumber, so that a relying party can check the issuing CA too
 * (`openssl verify -crl_check_all`). It lists the issuing CAs the root has
 * revoked: none, as long as an environment has its one issuing CA (there is
 * no operation that revokes it); a compromised issuing CA means a new hierarchy.
 */
export class CrlService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly authorities: Authorities,
  ) {}

  /** The CRL to serve now: the stored one while fresh, else a new one. */
  async current(environment: Environment, issuer: CrlIssuer = "issuing"): Promise<PublishedCrl> {
    const stored = await this.db.manager.findOne(CrlState, { where: { environment: stateKey(environment, issuer) } });
    if (stored && this.isFresh(stored)) return published(stored, environment, issuer);
    return this.db.transaction(async ({ em }) => {
      const state = await this.lockedState(em, environment, issuer);
      // Another request or instance may have refreshed it while this one waited.
      if (this.isFresh(state)) return published(state, environment, issuer);
      return this.rebuild(em, environment, issuer);
    });
  }

  /** Signs a new CRL with the next cRLNumber in the caller's transaction. */
  async rebuild(em: EntityManager, environment: Environment, issuer: CrlIssuer = "issuing"): Promise<PublishedCrl> {
    const ca = this.authorities.of(environment);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const state = await this.lockedState(em, environment, issuer);
      const thisUpdate = new Date(Math.floor(this.clock.now().getTime() / 1000) * 1000);
      const nextUpdate = new Date(thisUpdate.getTime() + CRL_VALIDITY_MS);
      const crlNumber = state.crlNumber + 1n;
      const input = { entries: issuer === "root" ? [] : await this.entries(em, environment, thisUpdate), thisUpdate, nextUpdate, crlNumber };
      const der = issuer === "root" ? await ca.signRootCrl(input) : await ca.signCrl(input);
      const result = await em
        .createQueryBuilder()
        .update(CrlState)
        .set({ crlNumber, thisUpdate, nextUpdate, derBase64: Buffer.from(der).toString("base64") })
        .where('"environment" = :key AND "crlNumber" = :previous', { key: state.environment, previous: state.crlNumber.toString() })
        .execute();
      if (result.affected) return { environment, issuer, crlNumber, thisUpdate, nextUpdate, der };
    }
    throw new Error(`could not publish a CRL for ${environment}: cRLNumber kept changing`);
  }

  private async lockedState(em: EntityManager, environment: Environment, issuer: CrlIssuer): Promise<CrlState> {
    // PostgreSQL: hold the row so concurrent rebuilds queue instead of retrying.
    // SQLite: transactions are already one at a time (Database queues them).
    const lock = this.db.isPostgres ? { lock: { mode: "pessimistic_write" as const } } : {};
    const key = stateKey(environment, issuer);
    const state = await em.findOne(CrlState, { where: { environment: key }, ...lock });
    if (!state) throw new Error(`crl_state has no row for ${key}`);
    return state;
  }

  private isFresh(state: CrlState): state is CrlState & { thisUpdate: Date; nextUpdate: Date; derBase64: string } {
    if (!state.derBase64 || !state.thisUpdate || !state.nextUpdate) return false;
    const now = this.clock.now().getTime();
    const age = now - state.thisUpdate.getTime();
    // A thisUpdate in the future (clock moved back) would read as "not yet valid": rebuild.
    return age >= 0 && age < CRL_REFRESH_AFTER_MS && now < state.nextUpdate.getTime();
  }

  private async entries(em: EntityManager, environment: Environment, at: Date): Promise<CrlEntry[]> {
    const rows = await em
      .createQueryBuilder(Certificate, "c")
      .where("c.environment = :environment AND c.revokedAt IS NOT NULL AND c.notAfter > :at", { environment, at: at.toISOString() })
      .getMany();
    const retired = await em
      .createQueryBuilder(KmsCertificate, "k")
      .where("k.environment = :environment AND k.retiredAt IS NOT NULL AND k.notAfter > :at", { environment, at: at.toISOString() })
      .getMany();
    return [
      ...rows.flatMap((c) =>
        c.revokedAt ? [{ serialHex: c.serialNumber, revokedAt: c.revokedAt, reason: c.revocationReason ?? RevocationReason.UNSPECIFIED }] : [],
      ),
      ...retired.flatMap((k) => (k.retiredAt ? [{ serialHex: k.serialNumber, revokedAt: k.retiredAt, reason: RevocationReason.SUPERSEDED }] : [])),
    ];
  }
}

function published(state: CrlState & { thisUpdate: Date; nextUpdate: Date; derBase64: string }, environment: Environment, issuer: CrlIssuer): PublishedCrl {
  return {
    environment,
    issuer,
    crlNumber: state.crlNumber,
    thisUpdate: state.thisUpdate,
    nextUpdate: state.nextUpdate,
    der: new Uint8Array(Buffer.from(state.derBase64, "base64")),
  };
}
