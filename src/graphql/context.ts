import DataLoader from "dataloader";
import type { Certificate } from "../certificates/certificate.entity.js";
import type { CertificateSigningRequest } from "../csrs/csr.entity.js";
import type { Delegation } from "../delegations/delegation.entity.js";
import type { NotificationFeed } from "../notifications/feed.js";
import type { Officer } from "../officers/officer.entity.js";
import type { Organization } from "../organizations/organization.entity.js";
import type { Viewer } from "../viewer.js";

/**
 * Per-request batching of the lookups nested fields make. No policy here: callers have already decided visibility.
 * Each loader is made on first use: a request or an event whose fields need none makes none.
 */
export interface Loaders {
  readonly organization: DataLoader<string, Organization | null>;
  readonly officer: DataLoader<string, Officer | null>;
  readonly certificate: DataLoader<string, Certificate | null>;
  readonly csr: DataLoader<string, CertificateSigningRequest | null>;
  readonly delegation: DataLoader<string, Delegation | null>;
  /**
   * Forgets everything loaded so far, loaders included. A subscription's
   * context lives as long as the subscription: each event calls this so it
   * sees current data, and between events the context holds no loader.
   */
  clearAll(): void;
  /** Extension point for feature loaders (certificates, CSRs...): created lazily, one per request. */
  lazy<T>(key: string, make: () => T): T;
  /** How many loaders are held now (made since the last clearAll). */
  readonly held: number;
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

/** The loaders of one request or one subscription, each made when a field first loads through it. */
class RequestLoaders implements Loaders {
  private organizations?: DataLoader<string, Organization | null>;
  private officers?: DataLoader<string, Officer | null>;
  private certificates?: DataLoader<string, Certificate | null>;
  private csrs?: DataLoader<string, CertificateSigningRequest | null>;
  private delegations?: DataLoader<string, Delegation | null>;
  private extra?: Map<string, unknown>;

  constructor(private readonly sources: LoaderSources) {}

  get organization(): DataLoader<string, Organization | null> {
    return (this.organizations ??= new DataLoader(byId((ids) => this.sources.organizationsByIds(ids))));
  }

  get officer(): DataLoader<string, Officer | null> {
    return (this.officers ??= new DataLoader(byId((ids) => this.sources.officersByIds(ids))));
  }

  get certificate(): DataLoader<string, Certificate | null> {
    return (this.certificates ??= new DataLoader(byId((ids) => this.sources.certificatesByIds(ids))));
  }

  get csr(): DataLoader<string, CertificateSigningRequest | null> {
    return (this.csrs ??= new DataLoader(byId((ids) => this.sources.csrsByIds(ids))));
  }

  get delegation(): DataLoader<string, Delegation | null> {
    return (this.delegations ??= new DataLoader(byId((ids) => this.sources.delegationsByIds(ids))));
  }

  get held(): number {
    const own = [this.organizations, this.officers, this.certificates, this.csrs, this.delegations].filter((l) => l !== undefined).length;
    return own + (this.extra?.size ?? 0);
  }

  clearAll(): void {
    this.organizations = this.officers = this.certificates = this.csrs = this.delegations = undefined;
    this.extra = undefined;
  }

  lazy<T>(key: string, make: () => T): T {
    this.extra ??= new Map();
    if (!this.extra.has(key)) this.extra.set(key, make());
    return this.extra.get(key) as T;
  }
}

export function createLoaders(sources: LoaderSources): Loaders {
  return new RequestLoaders(sources);
}

export interface Context {
  viewer: Viewer | null;
  loaders: Loaders;
  /** The client's network address (HTTP requests), for throttling unauthenticated attempts. */
  clientAddress?: string;
  /** Where subscriptions get their events; set on WebSocket operations. */
  feeds?: { notifications: NotificationFeed };
}
