import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";

/** Persistence only: the hash never becomes a GraphQL field. */
@Entity("api_tokens")
export class ApiToken {
  @PrimaryColumn({ type: "varchar", length: 36 })
  id!: string;

  @Column({ type: "varchar", length: 36 })
  officerId!: string;

  /** SHA-256 of the token, hex. The token itself is never stored. */
  @Column({ type: "varchar", length: 64 })
  tokenHash!: string;

  @Column({ type: "varchar", length: 100 })
  label!: string;

  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  createdAt!: Date;

  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  lastUsedAt!: Date | null;

  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  revokedAt!: Date | null;

  /** The token stops working at this instant; null for no expiry. */
  @Column({ type: "varchar", length: 24, nullable: true, transformer: isoInstant })
  expiresAt!: Date | null;
}
