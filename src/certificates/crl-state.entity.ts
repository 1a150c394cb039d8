import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";
import { Environment } from "../domain.js";

/** cRLNumber as a bigint: PostgreSQL returns bigint columns as strings, SQLite as numbers. */
const crlNumberColumn = {
  to: (value: bigint | null | undefined) => (value == null ? value : value.toString()),
  from: (value: string | number | null) => (value == null ? null : BigInt(value)),
};

/** The current CRL of one environment (see migration 1764300000300). */
@Entity("crl_state")
export class CrlState {
  @PrimaryColumn({ type: "varchar", length: 16 })
  environment!: Environment;

  @Column({ type: "bigint", transformer: crlNumberColumn })
  crlNumber!: bigint;

  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  thisUpdate!: Date | null;

  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  nextUpdate!: Date | null;

  /** The signed CRL, DER, base64; null until first built. */
  @Column({ type: "text", nullable: true })
  derBase64!: string | null;
}
