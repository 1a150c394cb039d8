import "reflect-metadata";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { DataSource } from "typeorm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { and, eq, isIn, matches, or, type Predicate, toSql } from "../../src/kernel/predicate.js";
import { readableKeyMaterialPredicates } from "../../src/policy.js";

/** Rows of key material over every combination that matters. */
const ROWS = ["P1", "P2", "MSP"].flatMap((organizationId) =>
  ["MTF", "PRODUCTION"].flatMap((environment) =>
    ["SIGNING", "MTLS_CLIENT", "TLS_SERVER"].map((kind) => ({ id: `${organizationId}-${environment}-${kind}`, organizationId, environment, kind })),
  ),
);

const CASES: Array<[string, Predicate[]]> = [
  ["operator", readableKeyMaterialPredicates(null)],
  ["officer without grants", readableKeyMaterialPredicates({ ownOrganizationId: "P1", grants: [] })],
  [
    "MSP with two grants",
    readableKeyMaterialPredicates({
      ownOrganizationId: "MSP",
      grants: [
        { delegationId: "d1", participantId: "P1", environment: "MTF", kinds: ["SIGNING", "TLS_SERVER"] },
        { delegationId: "d2", participantId: "P2", environment: "PRODUCTION", kinds: ["MTLS_CLIENT"] },
      ] as never,
    }),
  ],
  ["grant with no kinds", readableKeyMaterialPredicates({ ownOrganizationId: "MSP", grants: [{ delegationId: "d3", participantId: "P1", environment: "MTF", kinds: [] }] as never })],
  ["nested, with a null", [or(and(eq("organizationId", "P2"), isIn("kind", ["SIGNING", null])), eq("environment", null))]],
];

describe("predicates: one definition, the same answer in memory and in SQL", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "keyportal-predicate-"));
  const db = new DataSource({ type: "sqlite", database: path.join(dir, "p.sqlite") });
  beforeAll(async () => {
    await db.initialize();
    await db.query(`CREATE TABLE km (id TEXT PRIMARY KEY, organizationId TEXT, environment TEXT, kind TEXT)`);
    for (const r of ROWS) await db.query(`INSERT INTO km VALUES (?, ?, ?, ?)`, [r.id, r.organizationId, r.environment, r.kind]);
  });
  afterAll(async () => {
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, branches] of CASES) {
    it(`agrees for ${name}`, async () => {
      const { sql, params } = toSql(or(...branches), "r", "x");
      const fromSql = (await db.createQueryBuilder().select("r.id", "id").from("km", "r").where(sql, params).orderBy("r.id").getRawMany<{ id: string }>()).map((r) => r.id);
      const inMemory = ROWS.filter((r) => branches.some((p) => matches(p, r))).map((r) => r.id).sort();
      expect(fromSql).toEqual(inMemory);
      // Each branch alone agrees too (lists run one query per branch).
      for (const p of branches) {
        const one = toSql(p, "r", "y");
        const rows = (await db.createQueryBuilder().select("r.id", "id").from("km", "r").where(one.sql, one.params).orderBy("r.id").getRawMany<{ id: string }>()).map((r) => r.id);
        expect(rows).toEqual(ROWS.filter((r) => matches(p, r)).map((r) => r.id).sort());
      }
    });
  }

  it("reads the rules as they are stated: an MSP sees its own rows and exactly its grants", () => {
    const [, , [, msp]] = CASES;
    const seen = ROWS.filter((r) => msp!.some((p) => matches(p, r))).map((r) => r.id);
    expect(seen).toEqual([
      "P1-MTF-SIGNING", "P1-MTF-TLS_SERVER", "P2-PRODUCTION-MTLS_CLIENT",
      "MSP-MTF-SIGNING", "MSP-MTF-MTLS_CLIENT", "MSP-MTF-TLS_SERVER", "MSP-PRODUCTION-SIGNING", "MSP-PRODUCTION-MTLS_CLIENT", "MSP-PRODUCTION-TLS_SERVER",
    ].sort((a, b) => ROWS.findIndex((r) => r.id === a) - ROWS.findIndex((r) => r.id === b)));
  });
});
