import { Brackets } from "typeorm";
import type { Database } from "../db/data-source.js";
import type { NotificationType } from "../domain.js";
import type { NotificationScope } from "../policy.js";
import { Notification } from "./notification.entity.js";

/** Reads of the notification history, always in id order (the id is the cursor). */
export class NotificationStore {
  constructor(private readonly db: Database) {}

  async maxId(): Promise<number> {
    const row = await this.db.isolated((em) =>
      em.createQueryBuilder(Notification, "n").select("MAX(n.id)", "max").getRawOne<{ max: string | number | null }>(),
    );
    return row?.max == null ? 0 : Number(row.max);
  }

  /** Every notification after the id, for the dispatcher (visibility is decided per subscriber). */
  after(afterId: number, limit: number): Promise<Notification[]> {
    return this.db.isolated((em) =>
      em.createQueryBuilder(Notification, "n").where("n.id > :after", { after: afterId }).orderBy("n.id", "ASC").limit(limit).getMany(),
    );
  }

  /**
   * Notifications after the id that the scope admits (null: all), oldest
   * first: the SQL form of AccessPolicy.canSeeNotification.
   */
  visibleAfter(scope: NotificationScope | null, afterId: number, types: readonly NotificationType[] | null, limit: number): Promise<Notification[]> {
    return this.db.isolated((em) => {
      const qb = em.createQueryBuilder(Notification, "n").where("n.id > :after", { after: afterId });
      if (types) {
        if (types.length === 0) return Promise.resolve([]);
        qb.andWhere("n.type IN (:...types)", { types: [...types] });
      }
      if (scope) {
        qb.andWhere(
          new Brackets((or) => {
            or.where("n.organizationId = :own", { own: scope.organizationId });
            or.orWhere("n.secondOrganizationId = :own");
            if (scope.audiences.length > 0) or.orWhere("n.audience IN (:...audiences)", { audiences: scope.audiences });
            scope.grants.forEach((g, i) => {
              or.orWhere(`(n.organizationId = :gp${i} AND n.environment = :ge${i} AND n.certificateKind IN (:...gk${i}))`, {
                [`gp${i}`]: g.participantId,
                [`ge${i}`]: g.environment,
                [`gk${i}`]: g.kinds,
              });
            });
          }),
        );
      }
      return qb.orderBy("n.id", "ASC").limit(limit).getMany();
    });
  }
}
