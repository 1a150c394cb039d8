import type { NotificationType } from "../kernel/domain.js";
import { badInput } from "../kernel/errors.js";
import { integerCursor, type PageInfo, pageOf, pageSize } from "../graphql/pagination.js";
import type { AccessPolicy } from "../policy.js";
import type { Viewer } from "../viewer.js";
import type { ExpiryScanner } from "./expiry-scanner.js";
import type { Notification } from "./notification.entity.js";
import type { NotificationStore } from "./notification.store.js";

/** How long runExpiryScan waits for a scan in progress (on any instance) to finish before answering SCAN_IN_PROGRESS. */
const MANUAL_SCAN_WAIT_MS = 5000;

/** The notification verbs the API offers: the history page and the manual expiry scan. */
export class NotificationService {
  constructor(
    private readonly store: NotificationStore,
    private readonly policy: AccessPolicy,
    private readonly scanner: ExpiryScanner,
  ) {}

  /** Visible notifications after the cursor, oldest first. */
  async page(
    viewer: Viewer | null,
    args: { after?: string | null; first?: number | null; types?: readonly NotificationType[] | null },
  ): Promise<{ nodes: Notification[]; pageInfo: PageInfo }> {
    const v = this.policy.requireViewer(viewer);
    const size = pageSize(args.first, 100);
    const rows = await this.store.visibleAfter(await this.policy.notificationScope(v), integerCursor(args.after), args.types ?? null, size + 1);
    return pageOf(rows, size, (n) => String(n.position));
  }

  /** Operators only: scan now; answers how many notifications it emitted. */
  async runExpiryScan(viewer: Viewer | null): Promise<number> {
    const v = this.policy.requireOperator(viewer);
    return this.scanner.runOnce({ actor: v, waitMs: MANUAL_SCAN_WAIT_MS });
  }
}

/** A subscription cursor: absent means live only. */
export function subscriptionCursor(after: unknown): number | null {
  if (after === undefined || after === null || after === "") return null;
  if (typeof after !== "string") throw badInput("INVALID_CURSOR", "after must be a cursor returned by this API");
  return integerCursor(after);
}
