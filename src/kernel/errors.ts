/**
 * The one error vocabulary. Services and pki/ throw DomainError; the GraphQL
 * formatter and the REST handlers map it to the client. Anything else is an
 * internal error and reaches the client without detail.
 */
export type ErrorCode =
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "BAD_USER_INPUT"
  | "CONFLICT"
  | "PRECONDITION_FAILED"
  | "RATE_LIMITED"
  | "INTERNAL_SERVER_ERROR";

/**
 * The closed vocabulary of reasons, each bound to exactly one code: a
 * reason names what went wrong, its code the kind of refusal. Clients match on
 * both, so a reason never changes code; a new refusal adds a row here.
 */
export const REASONS = {
  // UNAUTHENTICATED
  UNAUTHENTICATED: "UNAUTHENTICATED",
  // FORBIDDEN
  DELEGATION_NOT_ACTIVE: "FORBIDDEN",
  FORBIDDEN: "FORBIDDEN",
  // NOT_FOUND
  NOT_FOUND: "NOT_FOUND",
  // BAD_USER_INPUT
  CA_REQUESTED: "BAD_USER_INPUT",
  CMS_DECRYPTION_FAILED: "BAD_USER_INPUT",
  CMS_RECIPIENT_NOT_FOUND: "BAD_USER_INPUT",
  CSR_SIGNATURE_INVALID: "BAD_USER_INPUT",
  ENROLLMENT_CODE_INVALID: "BAD_USER_INPUT",
  IDEMPOTENCY_KEY_REUSED: "BAD_USER_INPUT",
  INVALID_CMS: "BAD_USER_INPUT",
  INVALID_COUNTRY: "BAD_USER_INPUT",
  INVALID_CSR: "BAD_USER_INPUT",
  INVALID_CURSOR: "BAD_USER_INPUT",
  INVALID_EMAIL: "BAD_USER_INPUT",
  INVALID_EXPIRY: "BAD_USER_INPUT",
  INVALID_FILTER: "BAD_USER_INPUT",
  INVALID_IDEMPOTENCY_KEY: "BAD_USER_INPUT",
  INVALID_JSON: "BAD_USER_INPUT",
  INVALID_KIND: "BAD_USER_INPUT",
  INVALID_KINDS: "BAD_USER_INPUT",
  INVALID_LABEL: "BAD_USER_INPUT",
  INVALID_MSP: "BAD_USER_INPUT",
  INVALID_NAME: "BAD_USER_INPUT",
  INVALID_NOTE: "BAD_USER_INPUT",
  INVALID_PAGE_SIZE: "BAD_USER_INPUT",
  INVALID_PARTICIPANT: "BAD_USER_INPUT",
  INVALID_REASON: "BAD_USER_INPUT",
  INVALID_SERIAL: "BAD_USER_INPUT",
  INVALID_VALIDITY: "BAD_USER_INPUT",
  INVALID_VARIABLES: "BAD_USER_INPUT",
  KEY_REUSE: "BAD_USER_INPUT",
  PAYLOAD_TOO_LARGE: "BAD_USER_INPUT",
  QUERY_TOO_COMPLEX: "BAD_USER_INPUT",
  REASON_NOT_ALLOWED: "BAD_USER_INPUT",
  SUBJECT_ATTRIBUTE_REPEATED: "BAD_USER_INPUT",
  SUBJECT_CHARACTER_NOT_ALLOWED: "BAD_USER_INPUT",
  SUBJECT_ENCODING_INVALID: "BAD_USER_INPUT",
  SUBJECT_MISMATCH: "BAD_USER_INPUT",
  SUBJECT_STRING_TYPE: "BAD_USER_INPUT",
  SUBJECT_VALUE_TOO_LONG: "BAD_USER_INPUT",
  SUBSCRIPTION_OVER_HTTP: "BAD_USER_INPUT",
  UNSUPPORTED_CMS_ALGORITHM: "BAD_USER_INPUT",
  UNSUPPORTED_CRITICAL_EXTENSION: "BAD_USER_INPUT",
  UNSUPPORTED_KEY_ALGORITHM: "BAD_USER_INPUT",
  VALIDITY_EXCEEDS_CA: "BAD_USER_INPUT",
  VALIDITY_TOO_LONG: "BAD_USER_INPUT",
  WEAK_KEY: "BAD_USER_INPUT",
  WEAK_SIGNATURE_ALGORITHM: "BAD_USER_INPUT",
  // CONFLICT
  ALREADY_APPLIED: "CONFLICT",
  ALREADY_APPROVED: "CONFLICT",
  ALREADY_BOOTSTRAPPED: "CONFLICT",
  ALREADY_DEACTIVATED: "CONFLICT",
  ALREADY_DECIDED: "CONFLICT",
  ALREADY_ENROLLED: "CONFLICT",
  ALREADY_RETIRED: "CONFLICT",
  ALREADY_REVOKED: "CONFLICT",
  CONCURRENT_ROTATION: "CONFLICT",
  DELEGATION_EXISTS: "CONFLICT",
  EMAIL_TAKEN: "CONFLICT",
  KEY_BLOCKED: "CONFLICT",
  KMS_CERTIFICATE_CURRENT: "CONFLICT",
  NAME_TAKEN: "CONFLICT",
  OFFICER_DEACTIVATED: "CONFLICT",
  SCAN_IN_PROGRESS: "CONFLICT",
  // PRECONDITION_FAILED
  DUAL_CONTROL_NOT_REQUIRED: "PRECONDITION_FAILED",
  INSUFFICIENT_OFFICERS: "PRECONDITION_FAILED",
  KMS_CERTIFICATE_EXPIRED: "PRECONDITION_FAILED",
  LAST_OPERATOR: "PRECONDITION_FAILED",
  SAME_OPERATOR: "PRECONDITION_FAILED",
  SECOND_APPROVAL_REQUIRED: "PRECONDITION_FAILED",
  // RATE_LIMITED
  TOO_MANY_CONNECTIONS: "RATE_LIMITED",
  TOO_MANY_ENROLLMENT_ATTEMPTS: "RATE_LIMITED",
  /** A resolver's throttle of its own, counting failed attempts. */
  TOO_MANY_FAILURES: "RATE_LIMITED",
  TOO_MANY_REQUESTS: "RATE_LIMITED",
  TOO_MANY_SUBSCRIPTIONS: "RATE_LIMITED",
  // INTERNAL_SERVER_ERROR
  INTERNAL: "INTERNAL_SERVER_ERROR",
  LINT_FAILED: "INTERNAL_SERVER_ERROR",
  UNAVAILABLE: "INTERNAL_SERVER_ERROR",
} as const satisfies Record<string, ErrorCode>;

export type Reason = keyof typeof REASONS;

/**
 * Reasons raised with a second code besides their own. DELEGATION_NOT_ACTIVE
 * is FORBIDDEN when a viewer without a delegation submits, and
 * PRECONDITION_FAILED when signing a request whose delegation ended since it
 * was submitted; both are asserted by clients today, so the second binding is
 * written here, once, rather than left open.
 */
export const SECOND_CODES = {
  DELEGATION_NOT_ACTIVE: "PRECONDITION_FAILED",
} as const satisfies Partial<Record<Reason, ErrorCode>>;

type Bound = { [R in Reason]: (typeof REASONS)[R] | (R extends keyof typeof SECOND_CODES ? (typeof SECOND_CODES)[R] : never) };

/** The reasons that may be raised with code C. */
export type ReasonOf<C extends ErrorCode> = { [R in Reason]: C extends Bound[R] ? R : never }[Reason];

const REASON_SET: ReadonlySet<string> = new Set(Object.keys(REASONS));
export const isReason = (value: unknown): value is Reason => typeof value === "string" && REASON_SET.has(value);

export class DomainError extends Error {
  override readonly name = "DomainError";
  readonly code: ErrorCode;
  readonly reason: Reason;
  constructor(
    code: ErrorCode,
    /** Stable machine-readable reason, SCREAMING_CASE, bound to code (REASONS). */
    reason: Reason,
    message: string,
    /** RATE_LIMITED: when to try again (extensions.retryAfterSeconds, HTTP Retry-After). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    if (!REASON_SET.has(reason)) throw new TypeError(`unknown reason ${String(reason)}`);
    const bound: ErrorCode[] = [REASONS[reason], ...(reason in SECOND_CODES ? [SECOND_CODES[reason as keyof typeof SECOND_CODES]] : [])];
    if (!bound.includes(code)) throw new TypeError(`reason ${reason} is ${bound.join(" or ")}, not ${code}`);
    this.code = code;
    this.reason = reason;
  }

  /** The usual way to refuse: the reason decides the code. */
  static of(reason: Reason, message: string, retryAfterSeconds?: number): DomainError {
    return new DomainError(REASONS[reason], reason, message, retryAfterSeconds);
  }
}

/**
 * A refusal that also carries details for the audit record and, when the
 * operators must hear of it, an alert for the log (never for the client):
 * the unit of work merges auditDetails into the refused attempt's audit event
 * and logs the alert at error level.
 */
export interface AuditedRefusal {
  readonly auditDetails: Record<string, unknown>;
  readonly alert?: { message: string; fields: Record<string, unknown> };
}
export const isAuditedRefusal = (error: unknown): error is Error & AuditedRefusal =>
  error instanceof Error && typeof (error as Partial<AuditedRefusal>).auditDetails === "object" && (error as Partial<AuditedRefusal>).auditDetails !== null;

export const badInput = (reason: ReasonOf<"BAD_USER_INPUT">, message: string) => new DomainError("BAD_USER_INPUT", reason, message);
export const notFound = (what: string) => new DomainError("NOT_FOUND", "NOT_FOUND", `${what} not found`);
export const forbidden = (message = "not allowed for this viewer") => new DomainError("FORBIDDEN", "FORBIDDEN", message);
export const conflict = (reason: ReasonOf<"CONFLICT">, message: string) => new DomainError("CONFLICT", reason, message);
export const unauthenticated = (message = "a valid bearer token is required") =>
  new DomainError("UNAUTHENTICATED", "UNAUTHENTICATED", message);
export const rateLimited = (reason: ReasonOf<"RATE_LIMITED">, message: string, retryAfterSeconds: number) =>
  new DomainError("RATE_LIMITED", reason, message, Math.max(1, Math.ceil(retryAfterSeconds)));
/** The database or Redis is unreachable or not answering: safe to retry (HTTP 503 with Retry-After). */
export const unavailable = (message = "the service is briefly unavailable; retry shortly") =>
  new DomainError("INTERNAL_SERVER_ERROR", "UNAVAILABLE", message);
export const preconditionFailed = (reason: ReasonOf<"PRECONDITION_FAILED">, message: string) =>
  new DomainError("PRECONDITION_FAILED", reason, message);

/**
 * The one error-to-HTTP mapping: the status of a DomainError outside GraphQL
 * (downloads, CRL), and of a GraphQL response whose request was refused as a
 * whole (limits, quotas) or that carries one of these codes.
 */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  BAD_USER_INPUT: 400,
  CONFLICT: 409,
  PRECONDITION_FAILED: 412,
  RATE_LIMITED: 429,
  INTERNAL_SERVER_ERROR: 500,
};

/**
 * Codes that decide a GraphQL response's HTTP status even when raised while
 * executing (the rest answer 200 with the error in `errors`).
 */
export const RESPONSE_STATUS_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["RATE_LIMITED"]);
/** Reasons whose HTTP status differs from their code's (one row per reason). */
export const REASON_HTTP_STATUS: Partial<Record<Reason, number>> = {
  UNAVAILABLE: 503,
};
