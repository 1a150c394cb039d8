import { CertificateKind, Environment, OfficerStatus, OrganizationKind, Role } from "./kernel/domain.js";
import { forbidden, notFound, unauthenticated } from "./kernel/errors.js";
import { NotificationAudience } from "./notifications/notification.entity.js";
import type { Viewer } from "./viewer.js";
import { all, and, eq, isIn, matches, type Predicate } from "./kernel/predicate.js";

/** What an active delegation lets an MSP do for a participant. */
export interface DelegationGrant {
  delegationId: string;
  participantId: string;
  mspId: string;
  kinds: CertificateKind[];
  environment: Environment;
}

export interface DelegationGrants {
  /** Active delegations received by an MSP organization. */
  activeForMsp(mspId: string): Promise<DelegationGrant[]>;
  /** Active delegations granted by a participant organization. */
  activeForParticipant(participantId: string): Promise<DelegationGrant[]>;
}

/** Something owned by an organization, for a certificate kind and environment. */
export interface KeyMaterialScope {
  organizationId: string;
  kind: CertificateKind;
  environment: Environment;
}

/** The columns of a notification that decide who sees it. */
export interface NotificationAddress {
  organizationId: string | null;
  secondOrganizationId: string | null;
  audience: string | null;
  certificateKind: string | null;
  environment: string | null;
}

/**
 * What a non-operator may see of the notification history, for list filters
 * (query and replay): rows of its organization (first or second), rows for an
 * audience it belongs to, and key material of participants its active
 * delegations cover.
 */
export interface NotificationScope {
  organizationId: string;
  audiences: string[];
  grants: DelegationGrant[];
}

/**
 * Tenancy, decided in one place. Queries, nested fields, list filters,
 * downloads and subscriptions all ask here. Reads of another tenant's object
 * answer NOT_FOUND (its existence is not revealed); refused actions on
 * visible objects answer FORBIDDEN.
 */
export class AccessPolicy {
  constructor(private readonly grants: DelegationGrants) {}

  requireViewer(viewer: Viewer | null): Viewer {
    if (!viewer) throw unauthenticated();
    return viewer;
  }

  isOperator(viewer: Viewer | null): boolean {
    return viewer?.role === Role.KMS_OPERATOR && viewer.officer.status === OfficerStatus.ACTIVE;
  }

  requireOperator(viewer: Viewer | null): Viewer {
    const v = this.requireViewer(viewer);
    if (!this.isOperator(v)) throw forbidden("only KMS operators may do this");
    return v;
  }

  /** Active delegations the viewer's organization received; only MSPs receive any, so others cost no query. */
  async grantsOf(viewer: Viewer): Promise<DelegationGrant[]> {
    if (viewer.organization.kind !== OrganizationKind.MSP) return [];
    return this.grants.activeForMsp(viewer.organization.id);
  }

  /** Organizations the viewer may see; null means all (operators). */
  async visibleOrganizationIds(viewer: Viewer): Promise<string[] | null> {
    if (this.isOperator(viewer)) return null;
    // Linked by an active delegation, either way: an MSP sees its participants, a participant its MSPs.
    const own = viewer.organization;
    const linked =
      own.kind === OrganizationKind.MSP
        ? (await this.grantsOf(viewer)).map((g) => g.participantId)
        : own.kind === OrganizationKind.PARTICIPANT
          ? (await this.grants.activeForParticipant(own.id)).map((g) => g.mspId)
          : [];
    return [own.id, ...new Set(linked)];
  }

  async canReadOrganization(viewer: Viewer, organizationId: string): Promise<boolean> {
    const visible = await this.visibleOrganizationIds(viewer);
    return visible === null || visible.includes(organizationId);
  }

  /**
   * The people of an organization (its officers, wherever a field names
   * one): operators see everyone; everyone sees their own organization's and
   * the KMS operators; an MSP never sees another organization's people, not
   * even while a delegation links them ("its name may show, its people may
   * not"); a participant sees those of an organization linked to it.
   */
  async canSeeOfficer(viewer: Viewer, officer: { organizationId: string; role: Role }): Promise<boolean> {
    if (this.isOperator(viewer) || officer.organizationId === viewer.organization.id) return true;
    if (officer.role === Role.KMS_OPERATOR) return true;
    if (viewer.organization.kind === OrganizationKind.MSP) return false;
    return this.canReadOrganization(viewer, officer.organizationId);
  }

  /** Officers of the organization itself may manage its officers; operators any. */
  canManageOfficers(viewer: Viewer, organizationId: string): boolean {
    return this.isOperator(viewer) || viewer.organization.id === organizationId;
  }

  /** Certificates, CSRs and their notifications: own organization, operators, or an MSP for what its delegation covers. */
  async canReadKeyMaterial(viewer: Viewer, scope: KeyMaterialScope): Promise<boolean> {
    if (this.isOperator(viewer) || viewer.organization.id === scope.organizationId) return true;
    const branches = readableKeyMaterialPredicates(await this.readableScopes(viewer));
    return branches.some((p) => matches(p, scope));
  }

  /** Submitting, renewing and reporting compromise: the organization's officers or a delegated MSP's. */
  async canActOnKeyMaterial(viewer: Viewer, scope: KeyMaterialScope): Promise<boolean> {
    if (viewer.role === Role.KMS_OPERATOR) return false;
    if (viewer.organization.id === scope.organizationId) return true;
    return (await this.delegationCovering(viewer, scope)) !== null;
  }

  async delegationCovering(viewer: Viewer, scope: KeyMaterialScope): Promise<DelegationGrant | null> {
    const grants = await this.grantsOf(viewer);
    return (
      grants.find(
        (g) => g.participantId === scope.organizationId && g.environment === scope.environment && g.kinds.includes(scope.kind),
      ) ?? null
    );
  }

  /** Key material scopes an MSP viewer may read, for list filters; null for operators. */
  async readableScopes(viewer: Viewer): Promise<{ ownOrganizationId: string; grants: DelegationGrant[] } | null> {
    if (this.isOperator(viewer)) return null;
    return { ownOrganizationId: viewer.organization.id, grants: await this.grantsOf(viewer) };
  }

  /** Audiences (Notification.audience values) the viewer's organization belongs to. */
  notificationAudiences(viewer: Viewer): string[] {
    const kind = viewer.organization.kind;
    return kind === OrganizationKind.PARTICIPANT || kind === OrganizationKind.MSP ? [NotificationAudience.PARTICIPANTS_AND_MSPS] : [];
  }

  /** Visible without asking for delegations: operators, the organization named first or second, or an audience of the viewer. */
  seesNotificationDirectly(viewer: Viewer, n: NotificationAddress): boolean {
    if (this.isOperator(viewer)) return true;
    return directNotificationPredicates(viewer.organization.id, this.notificationAudiences(viewer)).some((p) => matches(p, n));
  }

  /** Whether only a delegation could make it visible: another organization's key material, for an MSP (only MSPs receive delegations). */
  mightSeeNotificationByDelegation(viewer: Viewer, n: NotificationAddress): boolean {
    if (this.isOperator(viewer) || viewer.organization.kind !== OrganizationKind.MSP) return false;
    return Boolean(n.organizationId && n.certificateKind && n.environment);
  }

  /**
   * Notifications: operators all; officers those of their organization (first
   * or second, e.g. the MSP of a delegation event), those for an audience they
   * belong to, and for an MSP the key material an active delegation covers.
   * Pass `grants` when the caller has just read them for many rows.
   */
  async canSeeNotification(viewer: Viewer, n: NotificationAddress, grants?: DelegationGrant[]): Promise<boolean> {
    if (this.seesNotificationDirectly(viewer, n)) return true;
    if (!this.mightSeeNotificationByDelegation(viewer, n)) return false;
    return delegatedNotificationPredicates(grants ?? (await this.grantsOf(viewer))).some((p) => matches(p, n));
  }

  /** canSeeNotification as a filter for lists; null for operators. Grants are read now. */
  async notificationScope(viewer: Viewer): Promise<NotificationScope | null> {
    if (this.isOperator(viewer)) return null;
    const grants = viewer.organization.kind === OrganizationKind.MSP ? await this.grantsOf(viewer) : [];
    return { organizationId: viewer.organization.id, audiences: this.notificationAudiences(viewer), grants: grants.filter((g) => g.kinds.length > 0) };
  }

  /** A delegation is readable by operators and by officers of its participant or MSP. */
  canReadDelegation(viewer: Viewer, delegation: { participantId: string; mspId: string }): boolean {
    if (this.isOperator(viewer)) return true;
    return viewer.organization.id === delegation.participantId || viewer.organization.id === delegation.mspId;
  }

  /** Throws NOT_FOUND unless readable: for single-object lookups. */
  async assertReadKeyMaterial(viewer: Viewer, scope: KeyMaterialScope, what: string): Promise<void> {
    if (!(await this.canReadKeyMaterial(viewer, scope))) throw notFound(what);
  }
}

/**
 * Who may read key material (rows with organizationId, environment, kind),
 * one predicate per way of reading: operators (null scopes) everything;
 * officers their organization, then each delegation grant's participant,
 * environment and kinds. canReadKeyMaterial matches them in memory;
 * certificates/visibility.ts compiles them to SQL.
 */
export function readableKeyMaterialPredicates(scopes: { ownOrganizationId: string; grants: readonly DelegationGrant[] } | null): Predicate[] {
  if (scopes === null) return [all];
  return [
    eq("organizationId", scopes.ownOrganizationId),
    ...scopes.grants.map((g) => and(eq("organizationId", g.participantId), eq("environment", g.environment), isIn("kind", g.kinds))),
  ];
}

/**
 * Who may see a notification without a delegation, one predicate per way:
 * the organization named first, the organization named second (e.g. the MSP
 * of a delegation event), and an audience the viewer belongs to.
 */
export function directNotificationPredicates(ownOrganizationId: string, audiences: readonly string[]): Predicate[] {
  return [
    eq("organizationId", ownOrganizationId),
    eq("secondOrganizationId", ownOrganizationId),
    ...(audiences.length > 0 ? [isIn("audience", audiences)] : []),
  ];
}

/** Notifications about key material an active delegation covers: one predicate per grant (its participant, environment and kinds). */
export function delegatedNotificationPredicates(grants: readonly DelegationGrant[]): Predicate[] {
  return grants.map((g) => and(eq("organizationId", g.participantId), eq("environment", g.environment), isIn("certificateKind", g.kinds)));
}

/**
 * The notification visibility rules, one predicate per way of seeing a row:
 * operators (null scope) everything; officers the direct ways, then each
 * delegation grant. canSeeNotification matches them in memory (direct ways
 * first, grants only when needed); notifications/notification.store.ts
 * compiles them to SQL, one query per predicate.
 */
export function visibleNotificationPredicates(scope: NotificationScope | null): Predicate[] {
  if (scope === null) return [all];
  return [...directNotificationPredicates(scope.organizationId, scope.audiences), ...delegatedNotificationPredicates(scope.grants)];
}
