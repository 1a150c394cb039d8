import type { MigrationInterface, QueryRunner } from "typeorm";

/**
 * SQLite: the chain's head follows each appended audit event inside the
 * INSERT itself (a trigger), which refuses an event that does not
 * extend the head (wrong seq or prevHash), so the chain cannot fork even if
 * a writer's view of the head were stale. One statement fewer per mutation.
 * PostgreSQL: the sequencer writes the head once per round (docs/sequencer.md).
 */
export class AuditHeadTrigger1764300002000 implements MigrationInterface {
  name = "AuditHeadTrigger1764300002000";

  async up(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === "postgres") return;
    await q.query(`CREATE TRIGGER audit_events_move_head AFTER INSERT ON audit_events
      BEGIN
        SELECT RAISE(ABORT, 'audit event does not extend the chain head')
          WHERE NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1) OR NEW."prevHash" IS NOT (SELECT hash FROM audit_head WHERE id = 1);
        UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
      END`);
  }

  async down(q: QueryRunner): Promise<void> {
    if (q.connection.driver.options.type === "postgres") return;
    await q.query(`DROP TRIGGER IF EXISTS audit_events_move_head`);
  }
}
