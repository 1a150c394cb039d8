import { createHash, randomBytes } from "node:crypto";

/** 256-bit random, URL-safe, with a prefix that secret scanners can recognise. */
export function newApiToken(): string {
  return `kp_${randomBytes(32).toString("base64url")}`;
}

export function hashApiToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** "Bearer <token>" → token, or null. */
export function bearerToken(header: string | undefined | null): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1]! : null;
}
