import { pino, type Logger } from "pino";
import type { LogLevel } from "./config.js";

export type { Logger };

/** JSON lines on stdout; secrets never reach here (tokens and keys are redacted by key name too). */
export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    base: { service: "keyportal" },
    redact: {
      paths: ["authorization", "token", "*.authorization", "*.token", "req.headers.authorization", "pin", "passphrase"],
      censor: "[redacted]",
    },
  });
}
