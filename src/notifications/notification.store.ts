import type { SelectQueryBuilder } from "typeorm";
import type { Database } from "../db/data-source.js";
import type { NotificationType } from "../kernel/domain.js";
import { toSql } from "../kernel/predicate.js";
import { type NotificationScope, visibleNotificationPredicates } from "../policy.js";
import { Notification } from "./notification.entity.js";

/**
 * Reads of the notification history, always in position order (the position
 * is the cursor, published as the id). On SQLite they go to the reading
 * connection, which sees committed rows only: a position is assigned at
 * insert and the one writer commits in position order, so a reader never
 * sees a later position before an earlier one. Reads never queue behind
 * writes in the transaction queue.
 */
export class NotificationStore {
  constructor(private readonly db: Database) {}

  /** The highest position assigned so far (the newest cursor). */
  async maxId(): Promise<number> {
    const row = await this.db.manager.createQueryBuilder(Notification, "n").select("MAX(n.position)", "max").getRawOne<{ max: string | number | null }>();
    return row?.max == null ? 0 : Number(row.max);
  }

  /** Every notification after the position, for the dispatcher (visibility is decided per subscriber). */
  after(afterPosition: number, limit: number): Promise<Notification[]> {
    return this.db.manager.createQueryBuilder(Notification, "n").where("n.position > :after", { after: afterPosition }).orderBy("n.position", "ASC").limit(limit).getMany();
  }

  /**
   * Notifications after the position that the scope admits (null: all), oldest
   * first: visibleNotificationPredicates (the rules AccessPolicy.canSeeNotification
   * matches in memory) compiled to SQL. A scoped viewer's rows come from one
   * query per predicate (own organization, named second, audience, each
   * delegation grant), each walking its own
   * index in position order for at most `limit` rows, merged here: the cost follows
   * the page, where one OR over them would read and sort every match.
   */
  async visibleAfter(scope: NotificationScope | null, afterId: number, types: readonly NotificationType[] | null, limit: number): Promise<Notification[]> {
    if (types && types.length === 0) return [];
    const branch = (where?: (qb: SelectQueryBuilder<Notification>) => void, ofTypes = types) => {
      const qb = this.db.manager.createQueryBuilder(Notification, "n").where("n.position > :after", { after: afterId });
      where?.(qb);
      if (ofTypes) qb.andWhere("n.type IN (:...types)", { types: [...ofTypes] });
      return qb.orderBy("n.position", "ASC").limit(limit).getMany();
    };
    if (!scope) {
      // Operators: all rows, or one (type, id) index walk per type asked for.
      if (!types) return branch();
      const pages: Notification[][] = [];
      for (const type of new Set(types)) pages.push(await branch(undefined, [type]));
      return merged(pages, limit);
    }
    const branches = visibleNotificationPredicates(scope).map((predicate) => {
      const { sql, params } = toSql(predicate, "n", "nv");
      return (qb: SelectQueryBuilder<Notification>) => qb.andWhere(sql, params);
    });
    const pages: Notification[][] = [];
    // One after the other: on SQLite the reading connection runs one statement at a time anyway.
    for (const where of branches) pages.push(await branch(where));
    return merged(pages, limit);
  }
}

/** The first `limit` distinct notifications of pages that are each in position order. */
function merged(pages: Notification[][], limit: number): Notification[] {
  const byPosition = new Map<number, Notification>();
  for (const page of pages) for (const n of page) byPosition.set(n.position, n);
  return [...byPosition.values()].sort((a, b) => a.position - b.position).slice(0, limit);
}
