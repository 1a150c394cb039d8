/**
 * The composition root: the one place that builds configuration, database,
 * clock, CA, event bus, mailer and schema, and hands them to constructors.
 * Used by src/main.ts and by the tests.
 */
import "reflect-metadata";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { AuditLog } from "./audit/audit.service.js";
import { IdempotencyKeys } from "./audit/idempotency.js";
import { Mutations } from "./kernel/unit-of-work.js";
import { AuditResolver } from "./audit/audit.resolver.js";
import { Authorities, createKeyStore, DatabaseCaMaterialStore } from "./certificates/authorities.js";
import { CertificateResolver, OrganizationKeyMaterialResolver } from "./certificates/certificate.resolver.js";
import { CertificateService } from "./certificates/certificate.service.js";
import { CertificateLifecycle } from "./certificates/lifecycle.js";
import { OcspService } from "./certificates/ocsp.service.js";
import { CrlService } from "./certificates/crl.service.js";
import { RevocationResolver } from "./certificates/revocation.resolver.js";
import { RevocationService } from "./certificates/revocation.service.js";
import { type Clock, systemClock } from "./kernel/clock.js";
import { CsrResolver } from "./csrs/csr.resolver.js";
import { CsrService } from "./csrs/csr.service.js";
import type { Config } from "./config.js";
import { createDataSource, createSqliteReader, Database } from "./db/data-source.js";
import { DatabaseDelegationGrants } from "./delegations/delegation.grants.js";
import { DelegationResolver, OrganizationDelegationsResolver } from "./delegations/delegation.resolver.js";
import { DelegationService } from "./delegations/delegation.service.js";
import { type EventBus, InProcessEventBus } from "./kernel/events.js";
import { buildKeyPortalSchema, type ResolverInstances } from "./graphql/schema.js";
import type { RouteInstaller, RouteInstallers } from "./http/routes.js";
import { certificateDownloadRoutes } from "./certificates/certificate.routes.js";
import { crlRoutes } from "./certificates/crl.routes.js";
import { caRoutes } from "./certificates/ca.routes.js";
import { ocspRoutes } from "./certificates/ocsp.routes.js";
import { kmsCertificateRoutes } from "./kms/kms.routes.js";
import { ENTITIES } from "./features.js";
import { type RunningHttpServer, startHttpServer } from "./http/server.js";
import type { RuntimeHealth } from "./health.js";
import { createLogger } from "./logger.js";
import { Metrics } from "./metrics.js";
import { kmsKeyAlgorithms } from "./kms/kms-profiles.js";
import { KmsCertificateResolver, KmsRotationApprovalResolver, NotificationKmsCertificateResolver } from "./kms/kms.resolver.js";
import { KmsService } from "./kms/kms.service.js";
import { CertificateExpiryResolver } from "./certificates/certificate-expiry.resolver.js";
import { EmailDeliveryWorker } from "./notifications/delivery-worker.js";
import { NotificationDispatcher } from "./notifications/dispatcher.js";
import { NotificationEmails } from "./notifications/email.js";
import { ExpiryScanner } from "./notifications/expiry-scanner.js";
import { AppState, DatabaseLease } from "./notifications/lease.js";
import { createMailer, type Mailer } from "./notifications/mailer.js";
import { NotificationResolver } from "./notifications/notification.resolver.js";
import { NotificationService } from "./notifications/notification.service.js";
import { NotificationStore } from "./notifications/notification.store.js";
import { Outbox } from "./notifications/outbox.js";
import { Sequencer } from "./notifications/sequencer.js";
import { RedisEventBus } from "./notifications/redis-event-bus.js";
import { NotificationRefs } from "./notifications/refs.js";
import { OfficerResolver } from "./officers/officer.resolver.js";
import { OfficerService } from "./officers/officer.service.js";
import { TokenCache } from "./officers/token-cache.js";
import { EnrollmentMailer, EnrollmentThrottle } from "./officers/enrollment.js";
import { bootstrap } from "./organizations/bootstrap.js";
import { OrganizationResolver } from "./organizations/organization.resolver.js";
import { OrganizationService } from "./organizations/organization.service.js";
import { DEFAULT_PROFILES } from "./pki/profiles.js";
import type { KeyStore } from "./pki/keystore/index.js";
import { AccessPolicy } from "./policy.js";
import { DualControl } from "./dual-control.js";
import { Delegation } from "./delegations/delegation.entity.js";
import { CertificateSigningRequest } from "./csrs/csr.entity.js";
import { Certificate } from "./certificates/certificate.entity.js";
import { Officer } from "./officers/officer.entity.js";
import { Organization } from "./organizations/organization.entity.js";
import { createQuotas, type Quotas } from "./quotas.js";
import { Environment } from "./kernel/domain.js";
import { cannotStart, type Lifecycle } from "./kernel/lifecycle.js";

/** Where the built GraphiQL page lives, relative to this file in src/ (tests) or dist/src/ (compiled). */
function defaultWebDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const root = path.basename(path.dirname(here)) === "dist" ? path.resolve(here, "..", "..") : path.resolve(here, "..");
  return path.join(root, "dist", "web");
}

export interface AppOverrides {
  clock?: Clock;
  logger?: Logger;
  bus?: EventBus;
  webDir?: string;
  /** The mailer to use instead of the one SMTP_URL selects (tests wrap the real one to read what was sent). */
  mailer?: Mailer;
  /** Certificate profiles other than DEFAULT_PROFILES (tests inject a wrong one to see the lint refuse it). */
  profiles?: typeof DEFAULT_PROFILES;
}

export interface App {
  config: Config;
  logger: Logger;
  clock: Clock;
  db: Database;
  bus: EventBus;
  services: {
    policy: AccessPolicy;
    audit: AuditLog;
    mutations: Mutations;
    outbox: Outbox;
    /** PostgreSQL: assigns positions and chains the audit log after commit (docs/sequencer.md). */
    sequencer: Sequencer;
    organizations: OrganizationService;
    officers: OfficerService;
    keyStore: KeyStore;
    authorities: Authorities;
    csrs: CsrService;
    certificates: CertificateService;
    kms: KmsService;
    crls: CrlService;
    ocsp: OcspService;
    revocations: RevocationService;
    delegations: DelegationService;
    notifications: NotificationService;
    dispatcher: NotificationDispatcher;
    expiryScanner: ExpiryScanner;
    emailWorker: EmailDeliveryWorker;
    mailer: Mailer;
    quotas: Quotas;
  };
  /** Listens on config.host:config.port (0 picks a free port). */
  start(): Promise<{ url: string }>;
  /** Graceful: stop accepting, drain HTTP and WebSocket, stop background work, close the database. */
  stop(): Promise<void>;
}

export async function createApp(config: Config, overrides: AppOverrides = {}): Promise<App> {
  const logger = overrides.logger ?? createLogger(config.logLevel, config.logFormat);
  const clock = overrides.clock ?? systemClock;
  const bus: EventBus =
    overrides.bus ??
    (config.redisUrl ? new RedisEventBus(config.redisUrl, { channelPrefix: config.redisChannelPrefix, logger }) : new InProcessEventBus());

  const { resilience } = config;
  const dataSource = createDataSource({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    entities: ENTITIES,
    timeouts: { connectMs: resilience.dbConnectTimeoutMs, queryMs: resilience.dbQueryTimeoutMs },
  });
  if (config.databaseUrl) {
    // Migrations (and waiting for another instance's) may take longer than any one request may: no statement deadline.
    const migrator = createDataSource({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, entities: ENTITIES, timeouts: null });
    await migrator.initialize();
    try {
      await migrator.runMigrations({ transaction: "each" });
    } finally {
      await migrator.destroy();
    }
    await dataSource.initialize();
  } else {
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: "each" });
  }
  const db = new Database(dataSource, createSqliteReader({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, entities: ENTITIES }));
  await db.initialize();

  const policy = new AccessPolicy(new DatabaseDelegationGrants(db));
  const audit = new AuditLog(db, clock);
  // Every notification gets its email deliveries in its own transaction.
  const outbox = new Outbox(clock, bus, new NotificationEmails(clock, config.publicUrl));
  const sequencer = new Sequencer({ db, bus, audit, lease: new DatabaseLease(db, clock, "lease:sequencer", resilience.leaseTtlMs), logger });
  audit.sequenceWith(sequencer);
  const mutations = new Mutations(db, audit, outbox, logger, {
    deadlineMs: resilience.mutationDeadlineMs,
    idempotency: new IdempotencyKeys(db, clock, resilience.idempotencyTtlMs),
  });
  const organizations = new OrganizationService(db, clock, policy, mutations);
  const mailer = overrides.mailer ?? createMailer({ smtpUrl: config.smtpUrl, dataDir: config.dataDir });
  const enrollmentMailer = new EnrollmentMailer(mailer, config.mailFrom, config.publicUrl, logger);
  // Resolved tokens are cached only where every instance that can revoke one is heard on this bus: SQLite (one instance) or Redis.
  const tokenCache = !config.databaseUrl || config.redisUrl ? new TokenCache(clock, bus) : null;
  const officers = new OfficerService(
    db,
    clock,
    policy,
    mutations,
    bus,
    { ttlMs: config.enrollmentTtlMs, mailer: enrollmentMailer, throttle: new EnrollmentThrottle(clock) },
    tokenCache,
  );

  await bootstrap({ db, clock, mutations, officers, logger }, { dataDir: config.dataDir, token: config.bootstrapToken });

  const keyStore = createKeyStore(config);
  const authorities = await Authorities.load({
    keyStore,
    material: new DatabaseCaMaterialStore(db, clock),
    clock,
    keyAlgorithm: config.caKeyAlgorithm,
    publicUrl: config.publicUrl,
  });
  const dualControl = new DualControl(config.dualControl);
  const csrs = new CsrService(db, clock, policy, mutations, authorities, overrides.profiles ?? DEFAULT_PROFILES, dualControl);
  const lifecycle = new CertificateLifecycle(db);
  const certificates = new CertificateService(db, clock, policy, authorities, lifecycle);
  const crls = new CrlService(db, clock, authorities);
  const kms = new KmsService(db, clock, policy, mutations, keyStore, authorities, {
    keyAlgorithms: kmsKeyAlgorithms(config.caKeyAlgorithm),
    publicUrl: config.publicUrl,
    expiryReminderDays: config.expiryReminderDays,
    crl: crls,
    dualControl,
  });
  // The KMS's own certificates (signing, encryption, TLS server) per environment: created on first start.
  await kms.ensureCurrentCertificates();
  const revocations = new RevocationService(clock, policy, mutations, crls);
  const delegations = new DelegationService(db, clock, policy, mutations, bus);

  const notificationStore = new NotificationStore(db);
  const notificationRefs = new NotificationRefs(db);
  const emailWorker = new EmailDeliveryWorker({ db, clock, mailer, bus, logger, from: config.mailFrom }, { deadlineMs: resilience.workerDeadlineMs });
  const dispatcher = new NotificationDispatcher(
    { store: notificationStore, policy, refs: notificationRefs, bus, logger },
    { deadlineMs: resilience.workerDeadlineMs },
  );
  const expiryScanner = new ExpiryScanner(
    { db, clock, mutations, lease: new DatabaseLease(db, clock, "lease:expiry-scan", resilience.leaseTtlMs), state: new AppState(db, clock), logger, lifecycle },
    // The KMS's own certificates are watched by the same scan (same lease, schedule and thresholds).
    // A scan may legitimately take longer than a dispatch or mail round: ten of their deadlines.
    { thresholdsDays: config.expiryReminderDays, extraScans: [(actor) => kms.scanExpiry(actor)], deadlineMs: 10 * resilience.workerDeadlineMs },
  );
  const notifications = new NotificationService(notificationStore, policy, expiryScanner);

  const instances: ResolverInstances = new Map<Function, object>([
    [OrganizationResolver, new OrganizationResolver(organizations, officers, policy)],
    [OfficerResolver, new OfficerResolver(officers)],
    [AuditResolver, new AuditResolver(audit, policy)],
    [CertificateResolver, new CertificateResolver(certificates, csrs, policy)],
    [OrganizationKeyMaterialResolver, new OrganizationKeyMaterialResolver(certificates, csrs)],
    [CsrResolver, new CsrResolver(csrs, policy)],
    [KmsCertificateResolver, new KmsCertificateResolver(kms)],
    [NotificationKmsCertificateResolver, new NotificationKmsCertificateResolver(kms)],
    [KmsRotationApprovalResolver, new KmsRotationApprovalResolver()],
    [RevocationResolver, new RevocationResolver(revocations)],
    [DelegationResolver, new DelegationResolver(delegations, policy)],
    [OrganizationDelegationsResolver, new OrganizationDelegationsResolver(delegations)],
    [NotificationResolver, new NotificationResolver(notifications, policy, notificationRefs)],
    [CertificateExpiryResolver, new CertificateExpiryResolver(clock)],
  ]);
  const schema = await buildKeyPortalSchema(instances);
  const ocsp = new OcspService(db, clock, authorities, logger);
  // The installer of each route factory the features declare (FEATURES' routes), built with its services.
  const routes: RouteInstallers = new Map<Function, RouteInstaller>([
    [certificateDownloadRoutes, certificateDownloadRoutes(certificates)],
    [crlRoutes, crlRoutes(crls)],
    [caRoutes, caRoutes(authorities)],
    [ocspRoutes, ocspRoutes(ocsp)],
    [kmsCertificateRoutes, kmsCertificateRoutes(kms)],
  ]);

  const quotas = createQuotas(config.quotas, { redisUrl: config.redisUrl, prefix: config.redisChannelPrefix, logger });
  const runtimeHealth = (): RuntimeHealth => ({
    redis: bus.connected ? (bus.connected() ? "connected" : "unreachable") : "not configured",
    mutationsQueued: mutations.queued,
    mutationQueueStuck: mutations.stuck,
    workers: { dispatcher: dispatcher.state, mail: emailWorker.state, expiryScan: expiryScanner.state },
  });
  const metrics = new Metrics({ db, clock, subscribers: () => dispatcher.subscriberCount, runtime: runtimeHealth, tokenCache: tokenCache ?? undefined });

  let http: RunningHttpServer | null = null;
  let phase: Lifecycle = "created";
  let stopping: Promise<void> | null = null;

  return {
    config,
    logger,
    clock,
    db,
    bus,
    services: { policy, audit, mutations, outbox, sequencer, organizations, officers, keyStore, authorities, csrs, certificates, crls, ocsp, revocations, delegations, kms,
      notifications, dispatcher, expiryScanner, emailWorker, mailer, quotas },
    async start() {
      if (phase !== "created") throw cannotStart("KeyPortal", phase);
      phase = "starting";
      sequencer.start();
      await dispatcher.start();
      emailWorker.start();
      expiryScanner.start(config.expiryScanIntervalMs);
      await bus.ready?.();
      const tls =
        config.tls?.kind === "files"
          ? { certPem: readFileSync(config.tls.certFile, "utf8"), keyPem: readFileSync(config.tls.keyFile, "utf8") }
          : config.tls?.kind === "kms"
            ? await kms.tlsServerCredentials(config.tls.environment === "MTF" ? Environment.MTF : Environment.PRODUCTION)
            : undefined;
      http = await startHttpServer(
        {
          schema,
          logger,
          db,
          auth: officers,
          bus,
          routes,
          webDir: overrides.webDir ?? defaultWebDir(),
          loaderSources: {
            organizationsByIds: (ids) => db.findByIds(Organization, ids),
            officersByIds: (ids) => db.findByIds(Officer, ids),
            certificatesByIds: (ids) => db.findByIds(Certificate, ids),
            csrsByIds: (ids) => db.findByIds(CertificateSigningRequest, ids),
            delegationsByIds: (ids) => db.findByIds(Delegation, ids),
          },
          feeds: { notifications: dispatcher },
          metrics,
          queryLimits: config.queryLimits,
          quotas,
          tls,
          runtimeHealth,
        },
        config.host,
        config.port,
      );
      logger.info({ url: http.url }, "KeyPortal is listening");
      if (phase === "starting") phase = "running";
      return { url: http.url };
    },
    stop() {
      if (stopping) return stopping;
      phase = "stopping";
      stopping = (async () => {
        if (http) await http.stop();
        await dispatcher.stop();
        await expiryScanner.stop();
        await emailWorker.stop();
        await sequencer.stop();
        enrollmentMailer.close();
        mailer.close();
        await quotas.close();
        tokenCache?.close();
        await bus.close();
        await keyStore.close();
        await db.close();
        phase = "stopped";
      })();
      return stopping;
    },
  };
}
