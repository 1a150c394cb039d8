import type { MigrationInterface, QueryRunner } from "typeorm";

/** Each environment's root publishes a CRL too: a crl_state row of its own, MTF-ROOT and PRODUCTION-ROOT, numbered from 0. */
export class RootCrls1764300001201 implements MigrationInterface {
  name = "RootCrls1764300001201";

  async up(q: QueryRunner): Promise<void> {
    for (const key of ["MTF-ROOT", "PRODUCTION-ROOT"]) {
      await q.query(`INSERT INTO crl_state ("environment", "crlNumber") VALUES ('${key}', 0)`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM crl_state WHERE "environment" IN ('MTF-ROOT', 'PRODUCTION-ROOT')`);
  }
}
