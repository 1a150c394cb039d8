import { forbidden } from "../kernel/errors.js";
import type { Context } from "../graphql/context.js";
import type { AccessPolicy } from "../policy.js";
import type { Officer } from "./officer.entity.js";

/**
 * The officer behind a field (submittedBy, decidedBy, actor...), or null
 * when the viewer may not see that person (AccessPolicy.canSeeOfficer).
 * Every field that names an officer goes through here.
 */
export async function visibleOfficer(ctx: Context, policy: AccessPolicy, officerId: string | null): Promise<Officer | null> {
  if (!officerId || !ctx.viewer) return null;
  const officer = await ctx.loaders.officer.load(officerId);
  return officer && (await policy.canSeeOfficer(ctx.viewer, officer)) ? officer : null;
}

/** For non-null fields: the officer, or FORBIDDEN when the viewer may not see them. */
export async function requiredVisibleOfficer(ctx: Context, policy: AccessPolicy, officerId: string, what: string): Promise<Officer> {
  const officer = await visibleOfficer(ctx, policy, officerId);
  if (officer) return officer;
  if (ctx.viewer && !(await ctx.loaders.officer.load(officerId))) throw new Error(`${what} ${officerId} is missing`);
  throw forbidden(`the ${what} belongs to another organization, whose people are not visible to this viewer`);
}
