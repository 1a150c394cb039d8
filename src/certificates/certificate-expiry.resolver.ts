import { FieldResolver, Int, Resolver, Root } from "type-graphql";
import { Certificate } from "./certificate.entity.js";
import type { Clock } from "../kernel/clock.js";
import { daysUntil } from "../kernel/time.js";

/** Certificate.daysUntilExpiry, at the injected clock's now (the expiry scan's notion of days). */
@Resolver(() => Certificate)
export class CertificateExpiryResolver {
  constructor(private readonly clock: Clock) {}

  @FieldResolver(() => Int, { description: "Whole days from now until notAfter, rounded down; negative once expired." })
  daysUntilExpiry(@Root() certificate: Certificate): number {
    return daysUntil(certificate.notAfter, this.clock.now());
  }
}
