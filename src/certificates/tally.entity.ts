import { Column, Entity, PrimaryColumn } from "typeorm";
import { bigintNumber } from "../db/columns.js";
import { CertificateKind, CertificateStatus, CsrStatus, Environment } from "../kernel/domain.js";

/** organizationId of the rows that count every organization together. */
export const ALL_ORGANIZATIONS = "*";

/** How many certificates have this organization, environment, kind, lifecycle and (ACTIVE only) day of notAfter. */
@Entity("certificate_tallies")
export class CertificateTally {
  @PrimaryColumn({ type: "varchar", length: 36 })
  organizationId!: string;

  @PrimaryColumn({ type: "varchar", length: 16 })
  environment!: Environment;

  @PrimaryColumn({ type: "varchar", length: 16 })
  kind!: CertificateKind;

  @PrimaryColumn({ type: "varchar", length: 16 })
  lifecycle!: CertificateStatus;

  /** YYYY-MM-DD (UTC) of notAfter for ACTIVE rows; '' otherwise. */
  @PrimaryColumn({ type: "varchar", length: 10 })
  expiryDay!: string;

  @Column({ type: "bigint", transformer: bigintNumber })
  n!: number;
}

/** How many CSRs have this organization, environment, kind and status. */
@Entity("csr_tallies")
export class CsrTally {
  @PrimaryColumn({ type: "varchar", length: 36 })
  organizationId!: string;

  @PrimaryColumn({ type: "varchar", length: 16 })
  environment!: Environment;

  @PrimaryColumn({ type: "varchar", length: 16 })
  kind!: CertificateKind;

  @PrimaryColumn({ type: "varchar", length: 16 })
  status!: CsrStatus;

  @Column({ type: "bigint", transformer: bigintNumber })
  n!: number;
}
