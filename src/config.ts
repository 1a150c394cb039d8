import path from "node:path";

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
  caPassphrase?: string;
  caKeyAlgorithm: "EC-P256" | "RSA-3072";
  pkcs11?: { library: string; tokenLabel: string; pin: string };
  expiryScanIntervalMs: number;
  expiryReminderDays: number[];
  /** How long an enrollment code works (KEYPORTAL_ENROLLMENT_TTL, default 72h). */
  enrollmentTtlMs: number;
  /** Environments where signing needs a second operator (KEYPORTAL_DUAL_CONTROL, default PRODUCTION; empty: none). */
  dualControl: Array<"MTF" | "PRODUCTION">;
}

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const LOG_LEVELS: LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

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

function environments(env: Env, name: string, fallback: Array<"MTF" | "PRODUCTION">): Array<"MTF" | "PRODUCTION"> {
  const raw = env[name];
  if (raw === undefined) return fallback;
  const parts = raw.split(",").map((p) => p.trim().toUpperCase()).filter(Boolean);
  const bad = parts.find((p) => p !== "MTF" && p !== "PRODUCTION");
  if (bad !== undefined) throw new ConfigError(name, `expected a comma-separated list of MTF and PRODUCTION (empty for none), got "${raw.trim()}"`);
  return [...new Set(parts as Array<"MTF" | "PRODUCTION">)];
}

export function loadConfig(env: Env, cwd = process.cwd()): Config {
  const host = optional(env, "HOST") ?? "127.0.0.1";
  const port = integer(env, "PORT", 4000, 0, 65535);
  const dataDir = path.resolve(cwd, optional(env, "KEYPORTAL_DATA_DIR") ?? "data");
  const logLevelRaw = (optional(env, "LOG_LEVEL") ?? "info").toLowerCase();
  if (!LOG_LEVELS.includes(logLevelRaw as LogLevel)) {
    throw new ConfigError("LOG_LEVEL", `must be one of ${LOG_LEVELS.join(", ")}`);
  }
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
  const publicUrl = (
    url(env, "KEYPORTAL_PUBLIC_URL", ["http:", "https:"]) ?? `http://${defaultPublicHost}:${port === 0 ? 4000 : port}`
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
    caPassphrase: optional(env, "KEYPORTAL_CA_PASSPHRASE"),
    caKeyAlgorithm,
    pkcs11,
    expiryScanIntervalMs: duration(env, "KEYPORTAL_EXPIRY_SCAN_INTERVAL", 3_600_000),
    expiryReminderDays: reminderDays(env, "KEYPORTAL_EXPIRY_REMINDER_DAYS"),
    enrollmentTtlMs: duration(env, "KEYPORTAL_ENROLLMENT_TTL", 72 * 3_600_000),
    dualControl: environments(env, "KEYPORTAL_DUAL_CONTROL", ["PRODUCTION"]),
  };
}
