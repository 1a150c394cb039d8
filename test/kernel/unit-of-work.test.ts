import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AuditedRefusal, DomainError } from "../../src/kernel/errors.js";
import { startTestServer, type TestServer } from "../support/server.js";

/** Any refusal may carry audit details (and an operators' alert); the unit of work knows no particular one. */
class RefusedWithDetails extends DomainError implements AuditedRefusal {
  readonly auditDetails = { rule: "EXAMPLE_RULE" };
  constructor() {
    super("CONFLICT", "ALREADY_APPLIED", "already applied");
  }
}

describe("the unit of work", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.close());

  it("audits a refused attempt with the details its error carries", async () => {
    const { mutations } = server.app.services;
    await expect(
      mutations.run({ action: "example.refuse", targetType: "Example", targetId: "ex-1", actor: null, details: { asked: 1 } }, async () => {
        throw new RefusedWithDetails();
      }),
    ).rejects.toThrow("already applied");
    const rows = (await server.app.db.dataSource.query(
      `SELECT outcome, "targetId" AS target_id, details FROM audit_events WHERE action = 'example.refuse'`,
    )) as Array<{ outcome: string; target_id: string; details: string }>;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.outcome).toBe("CONFLICT");
    expect(rows[0]!.target_id).toBe("ex-1");
    expect(JSON.parse(rows[0]!.details)).toEqual({ asked: 1, rule: "EXAMPLE_RULE", reason: "ALREADY_APPLIED" });
  });
});
