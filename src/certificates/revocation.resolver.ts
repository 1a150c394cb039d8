import { Arg, Ctx, ID, Mutation, Resolver } from "type-graphql";
import { RevocationReason } from "../kernel/domain.js";
import type { Context } from "../graphql/context.js";
import { Certificate } from "./certificate.entity.js";
import type { RevocationService } from "./revocation.service.js";

@Resolver(() => Certificate)
export class RevocationResolver {
  constructor(private readonly revocations: RevocationService) {}

  @Mutation(() => Certificate, { description: "Revokes with KEY_COMPROMISE at once and blocks the key from any future CSR." })
  reportKeyCompromise(
    @Ctx() ctx: Context,
    @Arg("certificateId", () => ID) certificateId: string,
    @Arg("note", () => String, { nullable: true }) note?: string | null,
  ): Promise<Certificate> {
    return this.revocations.reportKeyCompromise(ctx.viewer, certificateId, note);
  }

  @Mutation(() => Certificate, {
    description:
      "The certificate's organization's officers, a delegated MSP's officers for what the delegation covers, or a KMS operator. Exactly once; KEY_COMPROMISE also blocks the key.",
  })
  revokeCertificate(
    @Ctx() ctx: Context,
    @Arg("certificateId", () => ID) certificateId: string,
    @Arg("reason", () => RevocationReason) reason: RevocationReason,
  ): Promise<Certificate> {
    return this.revocations.revoke(ctx.viewer, certificateId, reason);
  }
}
