import { createHash } from "node:crypto";
import type { EntityManager } from "typeorm";
import type { Clock } from "../kernel/clock.js";
import type { AuditRecord } from "../kernel/ports.js";
import type { Database } from "../db/data-source.js";
import { AuditEvent } from "./audit-event.entity.js";

/** One audit event as a mutation writes it (the kernel's port states it; never tokens, keys or PINs in details). */
export type AuditEntry = AuditRecord;

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

/** An audit_pending row (PostgreSQL): an event committed by its mutation, not yet in the chain (details as stored JSON). */
type PendingRow = Omit<AuditRecord, "details"> & { id: string | number; at: string; details: string };

/**
 * The hash-chained audit log. On SQLite (one writer) append chains the event
 * at once. On PostgreSQL mutations commit concurrently: append leaves the
 * event in audit_pending and the sequencer chains it after commit, in the
 * order it takes them (chainPending, docs/sequencer.md); settle() waits for
 * that, so a mutation answers only once its event is in the chain.
 */
export class AuditLog {
  private sequencer: { flush(): Promise<void> } | null = null;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** PostgreSQL: the sequencer that chains pending events. */
  sequenceWith(sequencer: { flush(): Promise<void> }): void {
    this.sequencer = sequencer;
  }

  get sequenced(): boolean {
    return this.sequencer !== null;
  }

  /** Appends inside the caller's transaction (SQLite: into the chain; PostgreSQL: for the sequencer). */
  async append(em: EntityManager, entry: AuditEntry): Promise<void> {
    const at = this.clock.now();
    const details = canonicalJson(entry.details);
    if (this.db.isPostgres) {
      await em
        .createQueryBuilder()
        .insert()
        .into("audit_pending")
        .values({ at: at.toISOString(), actorId: entry.actorId, organizationId: entry.organizationId, action: entry.action, outcome: entry.outcome,
          targetType: entry.targetType, targetId: entry.targetId, details })
        .execute();
      return;
    }
    const head = await em
      .createQueryBuilder()
      .select(["h.seq AS seq", "h.hash AS hash"])
      .from("audit_head", "h")
      .where("h.id = 1")
      .getRawOne<{ seq: string | number; hash: string }>();
    if (!head) throw new Error("audit_head row missing");
    const event = this.link(Number(head.seq) + 1, head.hash, { ...entry, at, details });
    // The insert moves audit_head along with it, and refuses an event that does not extend it (trigger, migration 1764300002000).
    await em.insert(AuditEvent, event);
  }

  /**
   * PostgreSQL, inside a sequencer round (which holds the round lock): moves
   * up to `limit` pending events into the chain in the order they are taken,
   * numbering them after audit_head. Returns how many it moved.
   */
  async chainPending(em: EntityManager, limit: number): Promise<number> {
    const taken = (await em.query(`DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending ORDER BY id LIMIT $1) RETURNING *`, [limit])) as [
      PendingRow[],
      number,
    ] | PendingRow[];
    const rows = (Array.isArray(taken[0]) ? taken[0] : taken) as PendingRow[];
    if (rows.length === 0) return 0;
    rows.sort((a, b) => Number(a.id) - Number(b.id));
    const head = (await em.query(`SELECT seq, hash FROM audit_head WHERE id = 1`)) as Array<{ seq: string | number; hash: string }>;
    if (!head[0]) throw new Error("audit_head row missing");
    let seq = Number(head[0].seq);
    let prevHash = head[0].hash;
    const events: AuditEvent[] = [];
    for (const row of rows) {
      const event = this.link(++seq, prevHash, { ...row, at: new Date(row.at) });
      events.push(event);
      prevHash = event.hash;
    }
    await em.insert(AuditEvent, events);
    await em.query(`UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1`, [seq, prevHash]);
    return rows.length;
  }

  /** PostgreSQL: resolves once the events committed so far are in the chain (a failed round is logged by the caller). */
  settle(): Promise<void> {
    return this.sequencer?.flush() ?? Promise.resolve();
  }

  /** Appends in a transaction of its own: for refused attempts, whose own transaction rolled back. */
  async appendAlone(entry: AuditEntry): Promise<void> {
    await this.db.transaction((tx) => this.append(tx.em, entry));
    await this.settle();
  }

  private link(seq: number, prevHash: string, entry: Omit<AuditEntry, "details"> & { at: Date; details: string }): AuditEvent {
    const event = new AuditEvent();
    event.seq = seq;
    event.at = entry.at;
    event.actorId = entry.actorId;
    event.organizationId = entry.organizationId;
    event.action = entry.action;
    event.outcome = entry.outcome;
    event.targetType = entry.targetType;
    event.targetId = entry.targetId;
    event.details = entry.details;
    event.prevHash = prevHash;
    event.hash = auditHash(prevHash, event);
    return event;
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
