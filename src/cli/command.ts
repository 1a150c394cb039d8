/**
 * What a CLI command is: its name, help text, options and a run function
 * that returns what it did, both as a human line and as JSON (--json). Each
 * command lives in a module under commands/ and is listed in registry.ts.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { CliError, EXIT, KeyPortalClient } from "./client.js";

export interface OptionSpec {
  type: "string" | "boolean";
  /** One line for --help. */
  description: string;
  /** Shown in --help after the option, e.g. "<id>". */
  value?: string;
  required?: boolean;
}

export type Values = Record<string, string | boolean | undefined>;

export interface CommandContext {
  values: Values;
  env: NodeJS.ProcessEnv;
  /** Prints a line at once (watch prints as it goes; other commands return their result). */
  out(line: string): void;
  /** Progress and warnings: stderr, never mixed into --json output. */
  info(line: string): void;
  json: boolean;
  signal: AbortSignal;
  /** A client for KEYPORTAL_URL / --url with the token from the environment or its file. */
  connect(): Promise<KeyPortalClient>;
  /** A client that sends no token whatever the environment holds (enroll). */
  connectAnonymously(): Promise<KeyPortalClient>;
  token(): Promise<string | undefined>;
}

/** What a command did: `text` for people, `json` for scripts (--json). */
export interface CommandResult {
  text: string;
  json: unknown;
}

export interface Command {
  /** "submit", or "delegations approve" for a command with a sub-command. */
  name: string;
  summary: string;
  /** Longer explanation for --help, optional. */
  details?: string;
  options: Record<string, OptionSpec>;
  examples: string[];
  /** Whether the command talks to the server (and so takes --url and a token). */
  remote: boolean;
  /** Returns its result, or nothing when it printed as it went (watch). */
  run(ctx: CommandContext): Promise<CommandResult | void>;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  url: { type: "string", value: "<url>", description: "KeyPortal's base URL (or KEYPORTAL_URL; default http://127.0.0.1:4000)" },
  token: { type: "string", value: "<token>", description: "API token (or KEYPORTAL_TOKEN); prefer a token file, as arguments show in `ps`" },
  "token-file": {
    type: "string",
    value: "<file>",
    description: "file holding the token, mode 0600 (or KEYPORTAL_TOKEN_FILE; default ~/.config/keyportal/token when it exists)",
  },
  json: { type: "boolean", description: "print the result as JSON (watch: one JSON object per line)" },
  help: { type: "boolean", description: "show this command's help" },
};

export function need(values: Values, name: string): string {
  const value = values[name];
  if (typeof value !== "string" || value.trim() === "") throw new CliError(`--${name} is required`, EXIT.USAGE);
  return value.trim();
}

export function optionalString(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

/** An enum option, case-insensitive; the error lists what is allowed. */
export function oneOf<T extends string>(value: string, allowed: readonly T[], name: string): T {
  const upper = value.trim().toUpperCase();
  const found = allowed.find((a) => a === upper);
  if (!found) throw new CliError(`--${name} must be one of ${allowed.join(", ")} (got "${value.slice(0, 40)}")`, EXIT.USAGE);
  return found;
}

/** A comma-separated list of enum values, e.g. --types CSR_SIGNED,CERTIFICATE_EXPIRING. */
export function listOf<T extends string>(value: string, allowed: readonly T[], name: string): T[] {
  const parts = value
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new CliError(`--${name} needs at least one of ${allowed.join(", ")}`, EXIT.USAGE);
  return [...new Set(parts.map((p) => oneOf(p, allowed, name)))];
}

export function positiveInteger(values: Values, name: string): number | undefined {
  const raw = optionalString(values, name);
  if (raw === undefined) return undefined;
  if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1) throw new CliError(`--${name} must be a whole number of at least 1`, EXIT.USAGE);
  return Number(raw);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An object id option (--certificate, --csr, --delegation...): a UUID as the API prints it. */
export function idOption(values: Values, name: string): string {
  const id = need(values, name);
  if (!UUID.test(id)) throw new CliError(`--${name} must be an id such as 2f1c0b9e-5d0a-4a47-9a59-3c9e1f7d1a20 (got "${id.slice(0, 40)}")`, EXIT.USAGE);
  return id.toLowerCase();
}

export async function readFileFor(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(code === "ENOENT" ? `${what} ${file} does not exist` : `cannot read ${what} ${file} (${code})`);
  }
}

export function defaultTokenFile(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(env.HOME ?? os.homedir(), ".config");
  return path.join(base, "keyportal", "token");
}

/**
 * The token, first found wins: --token, --token-file, KEYPORTAL_TOKEN,
 * KEYPORTAL_TOKEN_FILE, then the default file when it exists. A token file
 * that others may read is refused, as ssh refuses such a key.
 */
export async function resolveToken(values: Values, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const flag = optionalString(values, "token");
  if (flag) return flag;
  const flagFile = optionalString(values, "token-file");
  const fromEnv = env.KEYPORTAL_TOKEN?.trim() || undefined;
  if (!flagFile && fromEnv) return fromEnv;
  const explicit = flagFile ?? (env.KEYPORTAL_TOKEN_FILE?.trim() || undefined);
  const file = explicit ?? defaultTokenFile(env);
  let mode: number;
  try {
    mode = (await fs.stat(file)).mode;
  } catch (error) {
    if (!explicit && (error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CliError(`token file ${file} ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : "cannot be read"}`, EXIT.USAGE);
  }
  if (process.platform !== "win32" && (mode & 0o077) !== 0) {
    throw new CliError(`token file ${file} may be read by others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${file}`, EXIT.USAGE);
  }
  const token = (await readFileFor(file, "token file")).trim();
  if (!token) throw new CliError(`token file ${file} is empty`, EXIT.USAGE);
  return token;
}

export function baseUrl(values: Values, env: NodeJS.ProcessEnv): string {
  return optionalString(values, "url") ?? (env.KEYPORTAL_URL?.trim() || "http://127.0.0.1:4000");
}

/** `keyportal download ...` as a person would type it: arguments with spaces quoted. */
export function shellCommand(...args: string[]): string {
  return ["keyportal", ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
}
