import path from "node:path";
import { DEFAULT_QUERY_LIMITS, type QueryLimits } from "./graphql/limits.js";
import { DEFAULT_QUOTAS, type QuotaConfig } from "./quotas.js";

/** Everything the server reads from its environment, validated once. */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** postgres://... ; absent means the embedded SQLite file under dataDir. */
  databaseUrl?: string;
  redisUrl?: string;
  /** Redis channels are "<prefix>:<topic>" (KEYPORTAL_REDIS_PREFIX, default "keyportal"): deployments sharing a Redis keep apart. */
  redisChannelPrefix: string;
  smtpUrl?: string;
  mailFrom: string;
  bootstrapToken?: string;
  /** Base URL clients use to reach this server (CRL distribution points, links). */
  publicUrl: string;
  logLevel: LogLevel;
  /** LOG_FORMAT: one readable line per event, or JSON lines; default pretty when stdout is a terminal. */
  logFormat: LogFormat;
  caPassphrase?: string;
  caKeyAlgorithm: "EC-P256" | "RSA-3072";
  pkcs11?: { library: string; tokenLabel: string; pin: string };
  expiryScanIntervalMs: number;
  expiryReminderDays: number[];
  /** How long an enrollment code works (KEYPORTAL_ENROLLMENT_TTL, default 72h). */
  enrollmentTtlMs: number;
  /** Environments where signing needs a second operator (KEYPORTAL_DUAL_CONTROL, default PRODUCTION; empty: none). */
  dualControl: Array<"MTF" | "PRODUCTION">;
  /** Per-operation cost budgets (KEYPORTAL_MAX_QUERY_COST, KEYPORTAL_ANONYMOUS_MAX_QUERY_COST). */
  queryLimits: QueryLimits;
  /** Rates and concurrency limits per token and per client address (src/quotas.ts). */
  quotas: QuotaConfig;
  /** HTTPS and WSS: PEM files, or the KMS's own TLS_SERVER certificate of an environment. */
  tls?: { kind: "files"; certFile: string; keyFile: string } | { kind: "kms"; environment: "MTF" | "PRODUCTION" };
  resilience: ResilienceConfig;
}

/** Bounded waits, leases and retries: what keeps a database or Redis outage from wedging the server. */
export interface ResilienceConfig {
  /** Opening a PostgreSQL connection (KEYPORTAL_DB_CONNECT_TIMEOUT). */
  dbConnectTimeoutMs: number;
  /** One statement: server-side statement_timeout; the client gives up on the connection a second later (KEYPORTAL_DB_QUERY_TIMEOUT). */
  dbQueryTimeoutMs: number;
  /** How long a mutation may wait for its turn and run before it fails as UNAVAILABLE (KEYPORTAL_MUTATION_DEADLINE). */
  mutationDeadlineMs: number;
  /** Time to live of the expiry-scan lease; renewed while the holder works (KEYPORTAL_LEASE_TTL). */
  leaseTtlMs: number;
  /** A background round (dispatch, mail, scan) longer than this is reported stalled and its loop restarted (KEYPORTAL_WORKER_DEADLINE). */
  workerDeadlineMs: number;
  /** How long an Idempotency-Key keeps its first outcome (KEYPORTAL_IDEMPOTENCY_TTL). */
  idempotencyTtlMs: number;
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const LOG_LEVELS: LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];
export type LogFormat = "pretty" | "json";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

type Env = Record<string, string | undefined>;

function optional(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = optional(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, "is not a valid URL");
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must start with ${protocols.map((p) => `${p}//`).join(" or ")}`);
  }
  return raw;
}

const DURATION = /^(\d+)(ms|s|m|h)?$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function duration(env: Env, name: string, fallbackMs: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallbackMs;
  const match = DURATION.exec(raw);
  if (!match) throw new ConfigError(name, `expected a duration such as 3600s, 60m or 1h, got "${raw}"`);
  const ms = Number(match[1]) * DURATION_MS[match[2] ?? "s"];
  if (ms < 1000) throw new ConfigError(name, "must be at least 1s");
  return ms;
}

function reminderDays(env: Env, name: string): number[] {
  const raw = optional(env, name) ?? "120,60,30,7,1";
  const parts = raw.split(",").map((p) => p.trim());
  if (parts.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 3650)) {
    throw new ConfigError(name, `expected comma-separated whole days between 1 and 3650, got "${raw}"`);
  }
  return [...new Set(parts.map(Number))].sort((a, b) => b - a);
}

function resilience(env: Env): ResilienceConfig {
  const idempotencyTtlMs = duration(env, "KEYPORTAL_IDEMPOTENCY_TTL", 86_400_000);
  if (idempotencyTtlMs < 86_400_000) throw new ConfigError("KEYPORTAL_IDEMPOTENCY_TTL", "must be at least 24h");
  return {
    dbConnectTimeoutMs: duration(env, "KEYPORTAL_DB_CONNECT_TIMEOUT", 5000),
    dbQueryTimeoutMs: duration(env, "KEYPORTAL_DB_QUERY_TIMEOUT", 15_000),
    mutationDeadlineMs: duration(env, "KEYPORTAL_MUTATION_DEADLINE", 30_000),
    leaseTtlMs: duration(env, "KEYPORTAL_LEASE_TTL", 30_000),
    workerDeadlineMs: duration(env, "KEYPORTAL_WORKER_DEADLINE", 60_000),
    idempotencyTtlMs,
  };
}

function environments(env: Env, name: string, fallback: Array<"MTF" | "PRODUCTION">): Array<"MTF" | "PRODUCTION"> {
  const raw = env[name];
  if (raw === undefined) return fallback;
  const parts = raw.split(",").map((p) => p.trim().toUpperCase()).filter(Boolean);
  const bad = parts.find((p) => p !== "MTF" && p !== "PRODUCTION");
  if (bad !== undefined) throw new ConfigError(name, `expected a comma-separated list of MTF and PRODUCTION (empty for none), got "${raw.trim()}"`);
  return [...new Set(parts as Array<"MTF" | "PRODUCTION">)];
}

function rate(env: Env, name: string, fallback: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+(\.\d+)?$/.test(raw) || Number(raw) <= 0) throw new ConfigError(name, `expected a positive number per second, got "${raw}"`);
  return Number(raw);
}

function quotas(env: Env): QuotaConfig {
  const d = DEFAULT_QUOTAS;
  return {
    perToken: { perSecond: rate(env, "KEYPORTAL_TOKEN_RATE", d.perToken.perSecond), burst: integer(env, "KEYPORTAL_TOKEN_BURST", d.perToken.burst, 1, 1e9) },
    perAddress: {
      perSecond: rate(env, "KEYPORTAL_ADDRESS_RATE", d.perAddress.perSecond),
      burst: integer(env, "KEYPORTAL_ADDRESS_BURST", d.perAddress.burst, 1, 1e9),
    },
    socketsPerToken: integer(env, "KEYPORTAL_MAX_SOCKETS_PER_TOKEN", d.socketsPerToken, 1, 1e6),
    subscriptionsPerSocket: integer(env, "KEYPORTAL_MAX_SUBSCRIPTIONS_PER_SOCKET", d.subscriptionsPerSocket, 1, 1e6),
    subscriptionUnitsPerToken: integer(env, "KEYPORTAL_MAX_SUBSCRIPTION_UNITS_PER_TOKEN", d.subscriptionUnitsPerToken, 1, 1e6),
  };
}

function tls(env: Env, cwd: string): Config["tls"] {
  const mode = optional(env, "KEYPORTAL_TLS");
  const certFile = optional(env, "KEYPORTAL_TLS_CERT");
  const keyFile = optional(env, "KEYPORTAL_TLS_KEY");
  if (mode !== undefined && mode !== "kms") throw new ConfigError("KEYPORTAL_TLS", `must be "kms" (or unset and KEYPORTAL_TLS_CERT/KEYPORTAL_TLS_KEY set), got "${mode}"`);
  if (mode === "kms") {
    if (certFile || keyFile) throw new ConfigError("KEYPORTAL_TLS", "kms and KEYPORTAL_TLS_CERT/KEYPORTAL_TLS_KEY exclude each other");
    const environment = optional(env, "KEYPORTAL_TLS_ENVIRONMENT") ?? "PRODUCTION";
    if (environment !== "MTF" && environment !== "PRODUCTION") throw new ConfigError("KEYPORTAL_TLS_ENVIRONMENT", "must be MTF or PRODUCTION");
    return { kind: "kms", environment };
  }
  if (!certFile && !keyFile) return undefined;
  if (!certFile) throw new ConfigError("KEYPORTAL_TLS_CERT", "is required when KEYPORTAL_TLS_KEY is set");
  if (!keyFile) throw new ConfigError("KEYPORTAL_TLS_KEY", "is required when KEYPORTAL_TLS_CERT is set");
  return { kind: "files", certFile: path.resolve(cwd, certFile), keyFile: path.resolve(cwd, keyFile) };
}

export function loadConfig(env: Env, cwd = process.cwd(), stdoutIsTty = false): Config {
  const host = optional(env, "HOST") ?? "127.0.0.1";
  const port = integer(env, "PORT", 4000, 0, 65535);
  const dataDir = path.resolve(cwd, optional(env, "KEYPORTAL_DATA_DIR") ?? "data");
  const logLevelRaw = (optional(env, "LOG_LEVEL") ?? "info").toLowerCase();
  if (!LOG_LEVELS.includes(logLevelRaw as LogLevel)) {
    throw new ConfigError("LOG_LEVEL", `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  const logFormat = (optional(env, "LOG_FORMAT") ?? (stdoutIsTty ? "pretty" : "json")).toLowerCase();
  if (logFormat !== "pretty" && logFormat !== "json") throw new ConfigError("LOG_FORMAT", "must be pretty or json");
  const bootstrapToken = optional(env, "KEYPORTAL_BOOTSTRAP_TOKEN");
  if (bootstrapToken !== undefined && bootstrapToken.length < 32) {
    throw new ConfigError("KEYPORTAL_BOOTSTRAP_TOKEN", "must be at least 32 characters");
  }
  const mailFrom = optional(env, "MAIL_FROM") ?? "KeyPortal <keyportal@localhost>";
  if (!/^[^\s@<>]+@[^\s@<>]+$|<[^\s@<>]+@[^\s@<>]+>$/.test(mailFrom)) {
    throw new ConfigError("MAIL_FROM", "must be an email address, optionally with a display name");
  }
  const redisChannelPrefix = optional(env, "KEYPORTAL_REDIS_PREFIX") ?? "keyportal";
  if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(redisChannelPrefix)) {
    throw new ConfigError("KEYPORTAL_REDIS_PREFIX", "must be 1 to 64 letters, digits or : _ . -");
  }
  const defaultPublicHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  const tlsConfig = tls(env, cwd);
  const publicUrl = (
    url(env, "KEYPORTAL_PUBLIC_URL", ["http:", "https:"]) ?? `${tlsConfig ? "https" : "http"}://${defaultPublicHost}:${port === 0 ? 4000 : port}`
  ).replace(/\/+$/, "");
  const caKeyAlgorithm = optional(env, "KEYPORTAL_CA_KEY_ALGORITHM") ?? "EC-P256";
  if (caKeyAlgorithm !== "EC-P256" && caKeyAlgorithm !== "RSA-3072") {
    throw new ConfigError("KEYPORTAL_CA_KEY_ALGORITHM", "must be EC-P256 or RSA-3072");
  }
  const pkcs11Library = optional(env, "KEYPORTAL_PKCS11_LIBRARY");
  let pkcs11: Config["pkcs11"];
  if (pkcs11Library) {
    const pin = optional(env, "KEYPORTAL_PKCS11_PIN");
    if (!pin) throw new ConfigError("KEYPORTAL_PKCS11_PIN", "is required when KEYPORTAL_PKCS11_LIBRARY is set");
    pkcs11 = { library: pkcs11Library, tokenLabel: optional(env, "KEYPORTAL_PKCS11_TOKEN") ?? "keyportal", pin };
  }
  return {
    host,
    port,
    dataDir,
    databaseUrl: url(env, "DATABASE_URL", ["postgres:", "postgresql:"]),
    redisUrl: url(env, "REDIS_URL", ["redis:", "rediss:"]),
    redisChannelPrefix,
    smtpUrl: url(env, "SMTP_URL", ["smtp:", "smtps:"]),
    mailFrom,
    bootstrapToken,
    publicUrl,
    logLevel: logLevelRaw as LogLevel,
    logFormat,
    caPassphrase: optional(env, "KEYPORTAL_CA_PASSPHRASE"),
    caKeyAlgorithm,
    pkcs11,
    expiryScanIntervalMs: duration(env, "KEYPORTAL_EXPIRY_SCAN_INTERVAL", 3_600_000),
    expiryReminderDays: reminderDays(env, "KEYPORTAL_EXPIRY_REMINDER_DAYS"),
    resilience: resilience(env),
    enrollmentTtlMs: duration(env, "KEYPORTAL_ENROLLMENT_TTL", 72 * 3_600_000),
    dualControl: environments(env, "KEYPORTAL_DUAL_CONTROL", ["PRODUCTION"]),
    queryLimits: {
      ...DEFAULT_QUERY_LIMITS,
      maxComplexity: integer(env, "KEYPORTAL_MAX_QUERY_COST", DEFAULT_QUERY_LIMITS.maxComplexity, 100, 1e9),
      anonymousMaxComplexity: integer(env, "KEYPORTAL_ANONYMOUS_MAX_QUERY_COST", DEFAULT_QUERY_LIMITS.anonymousMaxComplexity, 10, 1e9),
    },
    quotas: quotas(env),
    tls: tlsConfig,
  };
}
