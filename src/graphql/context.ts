import DataLoader from "dataloader";
import type { Certificate } from "../certificates/certificate.entity.js";
import type { CertificateSigningRequest } from "../csrs/csr.entity.js";
import type { Delegation } from "../delegations/delegation.entity.js";
import type { NotificationFeed } from "../notifications/feed.js";
import type { Officer } from "../officers/officer.entity.js";
import type { Organization } from "../organizations/organization.entity.js";
import type { Viewer } from "../viewer.js";

/** Per-request batching of the lookups nested fields make. No policy here: callers have already decided visibility. */
export interface Loaders {
  organization: DataLoader<string, Organization | null>;
  officer: DataLoader<string, Officer | null>;
  certificate: DataLoader<string, Certificate | null>;
  csr: DataLoader<string, CertificateSigningRequest | null>;
  delegation: DataLoader<string, Delegation | null>;
  /**
   * Forgets everything loaded so far. A subscription's context lives as long
   * as the subscription: each event calls this so it sees current data and
   * the caches don't grow without bound.
   */
  clearAll(): void;
  /** Extension point for feature loaders (certificates, CSRs...): created lazily, one per request. */
  lazy<T>(key: string, make: () => T): T;
}

export interface LoaderSources {
  organizationsByIds(ids: readonly string[]): Promise<Organization[]>;
  officersByIds(ids: readonly string[]): Promise<Officer[]>;
  certificatesByIds(ids: readonly string[]): Promise<Certificate[]>;
  csrsByIds(ids: readonly string[]): Promise<CertificateSigningRequest[]>;
  delegationsByIds(ids: readonly string[]): Promise<Delegation[]>;
}

export function byId<T extends { id: string }>(fetch: (ids: readonly string[]) => Promise<T[]>) {
  return async (ids: readonly string[]): Promise<Array<T | null>> => {
    const rows = await fetch(ids);
    const map = new Map(rows.map((r) => [r.id, r]));
    return ids.map((id) => map.get(id) ?? null);
  };
}

export function createLoaders(sources: LoaderSources): Loaders {
  const extra = new Map<string, unknown>();
  const loaders = {
    organization: new DataLoader(byId((ids) => sources.organizationsByIds(ids))),
    officer: new DataLoader(byId((ids) => sources.officersByIds(ids))),
    certificate: new DataLoader(byId((ids) => sources.certificatesByIds(ids))),
    csr: new DataLoader(byId((ids) => sources.csrsByIds(ids))),
    delegation: new DataLoader(byId((ids) => sources.delegationsByIds(ids))),
  };
  return {
    ...loaders,
    clearAll() {
      for (const loader of Object.values(loaders)) loader.clearAll();
      for (const value of extra.values()) if (value instanceof DataLoader) value.clearAll();
    },
    lazy<T>(key: string, make: () => T): T {
      if (!extra.has(key)) extra.set(key, make());
      return extra.get(key) as T;
    },
  };
}

export interface Context {
  viewer: Viewer | null;
  loaders: Loaders;
  /** The client's network address (HTTP requests), for throttling unauthenticated attempts. */
  clientAddress?: string;
  /** Where subscriptions get their events; set on WebSocket operations. */
  feeds?: { notifications: NotificationFeed };
}
