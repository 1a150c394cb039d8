import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { DomainError, type ErrorCode, isReason, REASONS, SECOND_CODES, badInput, type Reason } from "../../src/kernel/errors.js";

const CONTRACT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "shared", "api", "contract.graphql");

describe("the closed reason vocabulary", () => {
  it("binds every reason to one code, in SCREAMING_CASE", () => {
    for (const [reason, code] of Object.entries(REASONS)) {
      expect(reason).toMatch(/^[A-Z][A-Z0-9_]*$/);
      expect(["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "CONFLICT", "PRECONDITION_FAILED", "RATE_LIMITED", "INTERNAL_SERVER_ERROR"]).toContain(code);
    }
    // The one reason raised with a second code names it explicitly, and it differs from its first.
    expect(Object.keys(SECOND_CODES)).toEqual(["DELEGATION_NOT_ACTIVE"]);
    expect(SECOND_CODES.DELEGATION_NOT_ACTIVE).not.toBe(REASONS.DELEGATION_NOT_ACTIVE);
  });

  it("derives the code from the reason, and refuses a reason raised with a code it is not bound to", () => {
    const error = DomainError.of("KEY_REUSE", "fresh keys only");
    expect([error.code, error.reason, error.message]).toEqual(["BAD_USER_INPUT", "KEY_REUSE", "fresh keys only"]);
    expect(badInput("WEAK_KEY", "too short").code).toBe("BAD_USER_INPUT");
    expect(new DomainError("PRECONDITION_FAILED", "DELEGATION_NOT_ACTIVE", "ended").code).toBe("PRECONDITION_FAILED");
    expect(() => new DomainError("CONFLICT" as ErrorCode, "KEY_REUSE", "x")).toThrow("reason KEY_REUSE is BAD_USER_INPUT, not CONFLICT");
    expect(() => DomainError.of("NO_SUCH_REASON" as Reason, "x")).toThrow(TypeError);
    expect(isReason("KEY_REUSE")).toBe(true);
    expect(isReason("KEY_REUSED")).toBe(false);
  });

  it("holds every reason the contract names", () => {
    const header = readFileSync(CONTRACT, "utf8").split("\n").filter((l) => l.startsWith("#")).join("\n");
    const listed = header.slice(header.indexOf("for example")).match(/\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b/g) ?? [];
    expect(listed.length).toBeGreaterThan(10);
    for (const reason of listed) expect(isReason(reason), reason).toBe(true);
  });
});
