import { createHash } from "node:crypto";
import type { EntityManager } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { Database } from "../db/data-source.js";
import { AuditEvent } from "./audit-event.entity.js";

export interface AuditEntry {
  actorId: string | null;
  organizationId: string | null;
  action: string;
  outcome: string;
  targetType: string;
  targetId: string | null;
  /** Never tokens, keys or PINs. */
  details: Record<string, unknown>;
}

const GENESIS = "0".repeat(64);

/** JSON with keys sorted at every level, so the hash does not depend on insertion order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

export function auditHash(prevHash: string, event: Omit<AuditEvent, "hash" | "prevHash">): string {
  const content = canonicalJson({
    seq: event.seq,
    at: event.at.toISOString(),
    actorId: event.actorId,
    organizationId: event.organizationId,
    action: event.action,
    outcome: event.outcome,
    targetType: event.targetType,
    targetId: event.targetId,
    details: event.details,
  });
  return createHash("sha256").update(prevHash).update(content).digest("hex");
}

export interface AuditVerificationResult {
  valid: boolean;
  checkedEvents: number;
  firstInvalidSeq: number | null;
}

export class AuditLog {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** Appends inside the caller's transaction; the audit_head row lock keeps seq gapless under concurrency. */
  async append(em: EntityManager, entry: AuditEntry): Promise<AuditEvent> {
    const headQuery = em.createQueryBuilder().select(["h.seq AS seq", "h.hash AS hash"]).from("audit_head", "h").where("h.id = 1");
    if (this.db.isPostgres) headQuery.setLock("pessimistic_write");
    const head = await headQuery.getRawOne<{ seq: string | number; hash: string }>();
    if (!head) throw new Error("audit_head row missing");
    const event = new AuditEvent();
    event.seq = Number(head.seq) + 1;
    event.at = this.clock.now();
    event.actorId = entry.actorId;
    event.organizationId = entry.organizationId;
    event.action = entry.action;
    event.outcome = entry.outcome;
    event.targetType = entry.targetType;
    event.targetId = entry.targetId;
    event.details = canonicalJson(entry.details);
    event.prevHash = head.hash;
    event.hash = auditHash(head.hash, event);
    await em.insert(AuditEvent, event);
    await em.createQueryBuilder().update("audit_head").set({ seq: event.seq, hash: event.hash }).where("id = 1").execute();
    return event;
  }

  /** Appends in a transaction of its own: for refused attempts, whose own transaction rolled back. */
  async appendAlone(entry: AuditEntry): Promise<void> {
    await this.db.transaction((tx) => this.append(tx.em, entry));
  }

  async page(opts: { organizationId?: string; afterSeq: number; first: number }): Promise<AuditEvent[]> {
    const qb = this.db.manager
      .getRepository(AuditEvent)
      .createQueryBuilder("e")
      .where("e.seq > :after", { after: opts.afterSeq })
      .orderBy("e.seq", "ASC")
      .take(opts.first);
    if (opts.organizationId) qb.andWhere("e.organizationId = :org", { org: opts.organizationId });
    return qb.getMany();
  }

  /**
   * Recomputes the chain from seq 1 in batches; reports the first event whose
   * link or hash is wrong. The head is read first and the chain checked up to
   * it: events appended while we read are not ours to judge, and a head read
   * last would run ahead of the events read before it.
   */
  async verify(): Promise<AuditVerificationResult> {
    const head = await this.db.manager
      .createQueryBuilder()
      .select(["h.seq AS seq", "h.hash AS hash"])
      .from("audit_head", "h")
      .where("h.id = 1")
      .getRawOne<{ seq: string | number; hash: string }>();
    const headSeq = head ? Number(head.seq) : 0;
    const repo = this.db.manager.getRepository(AuditEvent);
    let prevHash = GENESIS;
    let expectedSeq = 1;
    let checked = 0;
    while (expectedSeq <= headSeq) {
      const batch = await repo
        .createQueryBuilder("e")
        .where("e.seq >= :from AND e.seq <= :to", { from: expectedSeq, to: headSeq })
        .orderBy("e.seq", "ASC")
        .take(1000)
        .getMany();
      if (batch.length === 0) break;
      for (const event of batch) {
        const ok = event.seq === expectedSeq && event.prevHash === prevHash && auditHash(prevHash, event) === event.hash;
        if (!ok) return { valid: false, checkedEvents: checked, firstInvalidSeq: expectedSeq };
        checked += 1;
        prevHash = event.hash;
        expectedSeq += 1;
      }
    }
    // The head must agree with the last event: a deleted tail is tampering too.
    if (head && (checked !== headSeq || head.hash !== prevHash)) {
      return { valid: false, checkedEvents: checked, firstInvalidSeq: checked + 1 };
    }
    return { valid: true, checkedEvents: checked, firstInvalidSeq: null };
  }
}
