import { Field, ID, ObjectType } from "type-graphql";
import { Column, Entity, PrimaryColumn } from "typeorm";
import { isoInstant } from "../db/columns.js";
import { OrganizationKind } from "../kernel/domain.js";

@ObjectType()
@Entity("organizations")
export class Organization {
  @Field(() => ID)
  @PrimaryColumn({ type: "varchar", length: 36 })
  id!: string;

  @Field({ description: "Registered legal name; a CSR's subject O must equal it." })
  @Column({ type: "varchar", length: 200 })
  name!: string;

  @Field(() => OrganizationKind)
  @Column({ type: "varchar", length: 16 })
  kind!: OrganizationKind;

  @Field({ description: "Certificate management group email; receives every notification." })
  @Column({ type: "varchar", length: 254 })
  contactEmail!: string;

  @Field({ description: "ISO 3166-1 alpha-2 country code; a CSR's subject C must equal it." })
  @Column({ type: "varchar", length: 2 })
  country!: string;

  @Field(() => Date)
  @Column({ type: "varchar", length: 24, transformer: isoInstant })
  createdAt!: Date;
}
