import { Field, ObjectType } from "type-graphql";
import { badInput } from "../kernel/errors.js";

@ObjectType()
export class PageInfo {
  @Field()
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

export const MAX_PAGE_SIZE = 500;

export function pageSize(first: number | null | undefined, fallback: number): number {
  const n = first ?? fallback;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE) {
    throw badInput("INVALID_PAGE_SIZE", `first must be between 1 and ${MAX_PAGE_SIZE}`);
  }
  return n;
}

/** Cursors over increasing integer ids (notifications, audit seq) are the decimal id itself. */
export function integerCursor(after: string | null | undefined): number {
  if (after == null || after === "") return 0;
  if (!/^\d{1,15}$/.test(after)) throw badInput("INVALID_CURSOR", "after must be a cursor returned by this API");
  return Number(after);
}

/** Opaque keyset cursor for lists ordered by (sortKey, id). */
export function encodeKeysetCursor(sortKey: string, id: string): string {
  return Buffer.from(JSON.stringify([sortKey, id]), "utf8").toString("base64url");
}

export function decodeKeysetCursor(after: string | null | undefined): { sortKey: string; id: string } | null {
  if (after == null || after === "") return null;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(after, "base64url").toString("utf8"));
    if (Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === "string" && typeof parsed[1] === "string") {
      return { sortKey: parsed[0], id: parsed[1] };
    }
  } catch {
    // fall through
  }
  throw badInput("INVALID_CURSOR", "after must be a cursor returned by this API");
}

/** Takes first+1 rows' worth and answers the page and its info. */
export function pageOf<T>(rows: T[], first: number, cursorOf: (row: T) => string): { nodes: T[]; pageInfo: PageInfo } {
  const nodes = rows.slice(0, first);
  const pageInfo = new PageInfo();
  pageInfo.hasNextPage = rows.length > first;
  pageInfo.endCursor = nodes.length > 0 ? cursorOf(nodes[nodes.length - 1]!) : null;
  return { nodes, pageInfo };
}
