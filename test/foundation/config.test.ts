import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

/** Each row: one variable with a bad value; loadConfig must refuse it with a ConfigError naming that variable. */
const REFUSED: Array<[variable: string, value: string, why: string]> = [
  ["PORT", "abc", "not a number"],
  ["PORT", "-1", "negative"],
  ["PORT", "65536", "above 65535"],
  ["PORT", "80.5", "not a whole number"],
  ["LOG_LEVEL", "verbose", "not a pino level"],
  ["DATABASE_URL", "mysql://user:pw@db.example/keyportal", "not a postgres scheme"],
  ["DATABASE_URL", "sqlite:///tmp/keyportal.sqlite", "sqlite is the default, not a URL"],
  ["DATABASE_URL", "not a url", "not a URL"],
  ["REDIS_URL", "http://127.0.0.1:6379", "not a redis scheme"],
  ["REDIS_URL", "127.0.0.1:6379", "not a URL"],
  ["SMTP_URL", "mailto:ops@example.com", "not an smtp scheme"],
  ["SMTP_URL", "smtp//mail.example.com", "not a URL"],
  ["KEYPORTAL_PUBLIC_URL", "ftp://keyportal.example", "not http(s)"],
  ["KEYPORTAL_PUBLIC_URL", "keyportal.example", "not a URL"],
  ["KEYPORTAL_EXPIRY_SCAN_INTERVAL", "often", "not a duration"],
  ["KEYPORTAL_EXPIRY_SCAN_INTERVAL", "500ms", "below one second"],
  ["KEYPORTAL_EXPIRY_SCAN_INTERVAL", "0", "zero"],
  ["KEYPORTAL_EXPIRY_SCAN_INTERVAL", "1.5h", "fractional"],
  ["KEYPORTAL_EXPIRY_REMINDER_DAYS", "120,sixty,30", "a word in the list"],
  ["KEYPORTAL_EXPIRY_REMINDER_DAYS", "120,0", "zero days"],
  ["KEYPORTAL_EXPIRY_REMINDER_DAYS", "120,,30", "an empty entry"],
  ["KEYPORTAL_EXPIRY_REMINDER_DAYS", "4000", "above ten years"],
  ["KEYPORTAL_BOOTSTRAP_TOKEN", "short-token-31-characters-long!", "shorter than 32 characters"],
  ["KEYPORTAL_ENROLLMENT_TTL", "3 days", "not a duration"],
  ["KEYPORTAL_DUAL_CONTROL", "PRODUCTION,STAGING", "an unknown environment"],
];

function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env, "/srv/keyportal");
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe("loadConfig", () => {
  it.each(REFUSED)("should refuse %s=%j (%s) with a ConfigError naming the variable", (variable, value) => {
    const error = refusal({ [variable]: value });
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
  });

  it("should not echo secrets from a refused DATABASE_URL or bootstrap token in the error message", () => {
    expect(refusal({ DATABASE_URL: "mysql://admin:hunter2-secret@db.example/kp" }).message).not.toContain("hunter2-secret");
    expect(refusal({ KEYPORTAL_BOOTSTRAP_TOKEN: "kp_tooshort_secret" }).message).not.toContain("kp_tooshort_secret");
  });

  it("should start from documented defaults when nothing is set", () => {
    const config = loadConfig({}, "/srv/keyportal");
    expect(config).toMatchObject({
      host: "127.0.0.1",
      port: 4000,
      dataDir: "/srv/keyportal/data",
      databaseUrl: undefined,
      redisUrl: undefined,
      smtpUrl: undefined,
      bootstrapToken: undefined,
      publicUrl: "http://127.0.0.1:4000",
      logLevel: "info",
      expiryScanIntervalMs: 3_600_000,
      expiryReminderDays: [120, 60, 30, 7, 1],
    });
  });

  it("should accept well-formed values of every variable it validates", () => {
    const config = loadConfig(
      {
        PORT: "8443",
        LOG_LEVEL: "WARN",
        DATABASE_URL: "postgresql://kp@db.internal:5432/keyportal",
        REDIS_URL: "rediss://cache.internal:6380",
        SMTP_URL: "smtps://mail.internal:465",
        KEYPORTAL_PUBLIC_URL: "https://keys.example.com/",
        KEYPORTAL_EXPIRY_SCAN_INTERVAL: "15m",
        KEYPORTAL_EXPIRY_REMINDER_DAYS: "7, 120,30,30",
        KEYPORTAL_BOOTSTRAP_TOKEN: "x".repeat(32),
        KEYPORTAL_DATA_DIR: "state",
      },
      "/srv/keyportal",
    );
    expect(config).toMatchObject({
      port: 8443,
      logLevel: "warn",
      databaseUrl: "postgresql://kp@db.internal:5432/keyportal",
      redisUrl: "rediss://cache.internal:6380",
      smtpUrl: "smtps://mail.internal:465",
      publicUrl: "https://keys.example.com",
      expiryScanIntervalMs: 900_000,
      expiryReminderDays: [120, 30, 7],
      bootstrapToken: "x".repeat(32),
      dataDir: "/srv/keyportal/state",
    });
  });

  it("should treat a blank variable as unset", () => {
    expect(loadConfig({ PORT: "  ", LOG_LEVEL: "" }, "/srv").port).toBe(4000);
  });
});

describe("identity and dual control settings", () => {
  it("should default to 72 h enrollment codes and dual control in PRODUCTION", () => {
    const config = loadConfig({}, "/srv/keyportal");
    expect(config.enrollmentTtlMs).toBe(72 * 3_600_000);
    expect(config.dualControl).toEqual(["PRODUCTION"]);
  });

  it("should read KEYPORTAL_ENROLLMENT_TTL and KEYPORTAL_DUAL_CONTROL, an empty list turning dual control off", () => {
    expect(loadConfig({ KEYPORTAL_ENROLLMENT_TTL: "90m" }, "/srv").enrollmentTtlMs).toBe(90 * 60_000);
    expect(loadConfig({ KEYPORTAL_DUAL_CONTROL: "mtf, PRODUCTION" }, "/srv").dualControl).toEqual(["MTF", "PRODUCTION"]);
    expect(loadConfig({ KEYPORTAL_DUAL_CONTROL: "" }, "/srv").dualControl).toEqual([]);
    expect(loadConfig({ KEYPORTAL_DUAL_CONTROL: " " }, "/srv").dualControl).toEqual([]);
  });
});
