import { describe, expect, it } from "vitest";
import { INTERNAL_MESSAGE, OUTAGE_MESSAGE, restErrorBody, toClientError } from "../../src/kernel/client-error.js";
import { DomainError, rateLimited, unavailable } from "../../src/kernel/errors.js";

describe("the one error mapping", () => {
  it("keeps a DomainError's code, reason and message, with its code's HTTP status", () => {
    const e = toClientError(DomainError.of("ALREADY_REVOKED", "the certificate is already revoked"));
    expect(e).toEqual({ code: "CONFLICT", reason: "ALREADY_REVOKED", message: "the certificate is already revoked", httpStatus: 409, headers: {}, kind: "refusal" });
    expect(restErrorBody(e)).toEqual({ error: { code: "CONFLICT", reason: "ALREADY_REVOKED", message: "the certificate is already revoked" } });
  });

  it("says when to come back: RATE_LIMITED is 429 with Retry-After, UNAVAILABLE is 503 with Retry-After", () => {
    const limited = toClientError(rateLimited("TOO_MANY_REQUESTS", "slow down", 2.2));
    expect([limited.httpStatus, limited.retryAfterSeconds, limited.headers]).toEqual([429, 3, { "retry-after": "3" }]);
    expect(restErrorBody(limited).error.retryAfterSeconds).toBe(3);
    const away = toClientError(unavailable());
    expect([away.code, away.reason, away.httpStatus, away.headers, away.kind]).toEqual(["INTERNAL_SERVER_ERROR", "UNAVAILABLE", 503, { "retry-after": "2" }, "outage"]);
  });

  it("maps a driver's lost connection to UNAVAILABLE without its details, and anything else to INTERNAL without any", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    expect(toClientError(refused)).toEqual({
      code: "INTERNAL_SERVER_ERROR", reason: "UNAVAILABLE", message: OUTAGE_MESSAGE, httpStatus: 503, headers: { "retry-after": "2" }, kind: "outage",
    });
    const bug = toClientError(new TypeError("cannot read properties of undefined (reading 'secret')"));
    expect(bug).toEqual({ code: "INTERNAL_SERVER_ERROR", reason: "INTERNAL", message: INTERNAL_MESSAGE, httpStatus: 500, headers: {}, kind: "internal" });
  });
});
