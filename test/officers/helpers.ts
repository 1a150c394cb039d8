import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { expect } from "vitest";
import type { GraphQLResponse, TestServer } from "../support/server.js";

/** A pino logger whose JSON lines the test can read. */
export function capturedLogger(level = "info"): { logger: Logger; lines: () => string[]; entries: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  return {
    logger: pino({ level }, sink),
    lines: () => [...lines],
    entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Asserts exactly one error with this code (and reason), and returns it. */
export function expectError(result: GraphQLResponse<unknown>, code: string, reason?: string) {
  expect(result.errors, `expected ${code}, got ${JSON.stringify(result)}`).toHaveLength(1);
  const error = result.errors![0]!;
  expect(error.extensions?.code).toBe(code);
  if (reason !== undefined) expect(error.extensions?.reason).toBe(reason);
  return error;
}

export interface AuditRow {
  seq: number;
  at: string;
  actorId: string | null;
  organizationId: string | null;
  action: string;
  outcome: string;
  targetType: string;
  targetId: string | null;
  details: string;
  hash: string;
  prevHash: string;
}

/** The audit table as stored, read around the service layer. */
export async function auditRows(server: TestServer): Promise<AuditRow[]> {
  const rows = (await server.app.db.dataSource.query(
    `SELECT seq, at, "actorId", "organizationId", action, outcome, "targetType", "targetId", details, hash, "prevHash"
       FROM audit_events ORDER BY seq`,
  )) as Array<AuditRow & { seq: number | string }>;
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

export const REGISTER_OFFICER = `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id email status role organization { id } } }`;
export const CREATE_ORGANIZATION = `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id name kind country contactEmail } }`;
export const DEACTIVATE_OFFICER = `mutation($id: ID!) { deactivateOfficer(officerId: $id) { id status } }`;
export const CREATE_API_TOKEN = `mutation($id: ID!, $label: String!) { createApiToken(officerId: $id, label: $label) { id token label officer { id } } }`;
export const REVOKE_API_TOKEN = `mutation($id: ID!) { revokeApiToken(tokenId: $id) }`;

let unique = 0;
/** A fresh email address per call, so tests never collide. */
export function freshEmail(prefix = "officer"): string {
  unique += 1;
  return `${prefix}.${unique}.${Math.random().toString(36).slice(2, 8)}@bank.example`;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a value other than undefined. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(25);
  }
}
