import type { NotificationType } from "../kernel/domain.js";
import type { Viewer } from "../viewer.js";
import type { Notification } from "./notification.entity.js";

export interface NotificationFeedOptions {
  /** Replay visible notifications with a greater id first; null: live only. */
  after: number | null;
  /** Only these types; null: all. */
  types: readonly NotificationType[] | null;
}

/** What Subscription.notifications reads from: the instance's dispatcher. */
export interface NotificationFeed {
  open(viewer: Viewer, options: NotificationFeedOptions): AsyncIterableIterator<Notification>;
}
