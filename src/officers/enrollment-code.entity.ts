import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";

/**
 * Persistence only: the live enrollment code of an officer who has not
 * enrolled yet. One row per officer, so a new code supersedes the old one;
 * the row is deleted when the code is redeemed. The code itself is never stored.
 */
@Entity("enrollment_codes")
export class EnrollmentCode {
  @PrimaryColumn({ type: "varchar", length: 36 })
  officerId!: string;

  /** SHA-256 of the code, hex. */
  @Column({ type: "varchar", length: 64 })
  codeHash!: string;

  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  expiresAt!: Date;

  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  createdAt!: Date;
}
