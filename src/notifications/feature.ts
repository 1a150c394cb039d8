import type { Feature } from "../kernel/feature.js";
import { EmailDelivery } from "./email-delivery.entity.js";
import { Notification } from "./notification.entity.js";
import { NotificationResolver } from "./notification.resolver.js";

/** What the notifications feature brings to the schema and the data source. */
export const notificationsFeature: Feature = {
  name: "notifications",
  entities: [Notification, EmailDelivery],
  resolvers: [NotificationResolver],
};
