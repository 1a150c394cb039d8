import { pino, type DestinationStream, type Logger } from "pino";
import type { LogFormat, LogLevel } from "./config.js";

export type { Logger };

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const LEVEL_COLORS: Record<number, string> = { 10: "90", 20: "36", 30: "32", 40: "33", 50: "31", 60: "35" };
/** Fields every line has, shown in the fixed part of a pretty line instead of as key=value. */
const FIXED = new Set(["level", "time", "msg", "pid", "hostname", "service"]);

/** A value as a token on one line: bare when safe, JSON-quoted otherwise (so control characters never reach the terminal raw). */
function token(value: unknown): string {
  if (typeof value === "string") return /^[\w.:/@+-]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return JSON.stringify(value);
}

/** One pino JSON line as `12:00:01.234 INFO  message key=value ...` (an error's stack indented below). */
export function prettyLine(json: string, color = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const level = Number(entry.level);
  const name = (LEVEL_NAMES[level] ?? String(entry.level)).padEnd(5);
  const time = typeof entry.time === "number" ? new Date(entry.time).toISOString().slice(11, 23) : "";
  const fields: string[] = [];
  let stack = "";
  for (const [key, value] of Object.entries(entry)) {
    if (FIXED.has(key)) continue;
    const err = value as { type?: string; message?: string; stack?: string } | null;
    if ((key === "err" || key === "error") && err && typeof err === "object" && typeof err.message === "string") {
      fields.push(`${key}=${token(`${err.type ?? "Error"}: ${err.message}`)}`);
      if (typeof err.stack === "string") stack = `\n    ${err.stack.split("\n").slice(1).map((l) => l.trim()).join("\n    ")}`;
      continue;
    }
    fields.push(`${key}=${token(value)}`);
  }
  const shownLevel = color ? `\u001b[${LEVEL_COLORS[level] ?? "0"}m${name}\u001b[0m` : name;
  const message = typeof entry.msg === "string" ? JSON.stringify(entry.msg).slice(1, -1) : "";
  return `${time} ${shownLevel} ${message}${fields.length ? `  ${fields.join(" ")}` : ""}${stack}\n`;
}

function prettyStream(out: NodeJS.WriteStream): DestinationStream {
  return { write: (line: string) => void out.write(prettyLine(line.trimEnd(), out.isTTY === true)) };
}

/**
 * JSON lines on stdout, or one readable line per event with format "pretty";
 * secrets never reach here (tokens and keys are redacted by key name too).
 */
export function createLogger(level: LogLevel, format: LogFormat = "json"): Logger {
  const options = {
    level,
    base: { service: "keyportal" },
    redact: {
      paths: ["authorization", "token", "*.authorization", "*.token", "req.headers.authorization", "pin", "passphrase"],
      censor: "[redacted]",
    },
  };
  return format === "pretty" ? pino(options, prettyStream(process.stdout)) : pino(options);
}
