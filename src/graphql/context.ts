import DataLoader from "dataloader";
import type { Officer } from "../officers/officer.entity.js";
import type { Organization } from "../organizations/organization.entity.js";
import type { Viewer } from "../viewer.js";

/** Per-request batching of the lookups nested fields make. No policy here: callers have already decided visibility. */
export interface Loaders {
  organization: DataLoader<string, Organization | null>;
  officer: DataLoader<string, Officer | null>;
  /** Extension point for feature loaders (certificates, CSRs...): created lazily, one per request. */
  lazy<T>(key: string, make: () => T): T;
}

export interface LoaderSources {
  organizationsByIds(ids: readonly string[]): Promise<Organization[]>;
  officersByIds(ids: readonly string[]): Promise<Officer[]>;
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
  return {
    organization: new DataLoader(byId((ids) => sources.organizationsByIds(ids))),
    officer: new DataLoader(byId((ids) => sources.officersByIds(ids))),
    lazy<T>(key: string, make: () => T): T {
      if (!extra.has(key)) extra.set(key, make());
      return extra.get(key) as T;
    },
  };
}

export interface Context {
  viewer: Viewer | null;
  loaders: Loaders;
}
