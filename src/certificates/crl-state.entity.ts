import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";

/** cRLNumber as a bigint: PostgreSQL returns bigint columns as strings, SQLite as numbers. */
const crlNumberColumn = {
  to: (value: bigint | null | undefined) => (value == null ? value : value.toString()),
  from: (value: string | number | null) => (value == null ? null : BigInt(value)),
};

/** The current CRL of one environment's issuing CA or root (see migrations 1764300000300 and 1764300001201). */
@Entity("crl_state")
export class CrlState {
  /** The environment (its issuing CA's CRL), or <ENV>-ROOT (its root's); the column kept its first name. */
  @PrimaryColumn({ type: "varchar", length: 16 })
  environment!: string;

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
