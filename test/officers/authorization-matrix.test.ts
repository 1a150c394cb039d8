/**
 * Who may do what, for every query and mutation of the identity issue, as
 * every kind of viewer, on SQLite and on PostgreSQL. The table below is the
 * specification: each cell is an exact outcome, either an error code
 * (optionally /REASON) or a named data outcome whose exact shape is checked
 * by the operation's `data` entry of the same name.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addOfficer, type TestOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { csrPem } from "../support/csr.js";
import { available } from "../support/deps.js";
import { type DbKind } from "../support/postgres.js";
import { type GraphQLResponse, startTestServer, type TestServer } from "../support/server.js";
import { auditRows, CREATE_API_TOKEN, freshEmail, REGISTER_OFFICER } from "./helpers.js";

const VIEWERS = ["anonymous", "deactivated", "revoked", "officerOfOrg", "otherOrgOfficer", "mspOfficer", "operator"] as const;
type ViewerName = (typeof VIEWERS)[number];

const U = "UNAUTHENTICATED";
const F = "FORBIDDEN";
const N = "NOT_FOUND";
const BAD_CODE = "BAD_USER_INPUT/ENROLLMENT_CODE_INVALID";
/** The contract's error codes; any other cell text names a data outcome. */
const ERROR_CODES = new Set([U, F, N, "BAD_USER_INPUT", "CONFLICT", "PRECONDITION_FAILED", "RATE_LIMITED", "INTERNAL_SERVER_ERROR"]);

// The organization under test is A: "officerOfOrg" is one of its officers; "otherOrgOfficer" belongs to participant B,
// "mspOfficer" to MSP M (no delegation); "deactivated" and "revoked" were officers / a token of A.
//
//  operation                              anonymous deactivated revoked officerOfOrg   otherOrgOfficer mspOfficer      operator
const MATRIX: Array<[operation: string, ...outcomes: string[]]> = [
  ["me",                                   U,        U,          U,      "self",        "self",         "self",         "self"],
  ["organizations",                        U,        U,          U,      "own only",    "own only",     "own only",     "all"],
  ["organization(A)",                      U,        U,          U,      "A itself",    "null",         "null",         "A itself"],
  ["organization(A).officers",             U,        U,          U,      "A's officers","null",         "null",         "A's officers"],
  ["createOrganization",                   U,        U,          U,      F,             F,              F,              "created"],
  ["registerOfficer(in A)",                U,        U,          U,      "registered",  N,              N,              "registered"],
  ["deactivateOfficer(another of A)",      U,        U,          U,      "deactivated", N,              N,              "deactivated"],
  ["deactivateOfficer(self)",              U,        U,          U,      F,             F,              F,              "PRECONDITION_FAILED/LAST_OPERATOR"],
  ["createApiToken(self)",                 U,        U,          U,      "granted",     "granted",      "granted",      "granted"],
  ["createApiToken(another of A)",         U,        U,          U,      F,             N,              N,              F],
  ["enrollOfficer(fresh code)",            "enrolled","enrolled", "enrolled","enrolled", "enrolled",     "enrolled",     "enrolled"],
  ["enrollOfficer(used code)",             BAD_CODE, BAD_CODE,   BAD_CODE, BAD_CODE,    BAD_CODE,       BAD_CODE,       BAD_CODE],
  ["resendEnrollment(officer of A)",       U,        U,          U,      "resent",      N,              N,              "resent"],
  ["approveCsr(PRODUCTION CSR of A)",      U,        U,          U,      F,             F,              F,              "approved"],
  ["revokeApiToken(own spare token)",      U,        U,          U,      "revoked",     "revoked",      "revoked",      "revoked"],
  ["revokeApiToken(another of A's token)", U,        U,          U,      F,             N,              N,              "revoked"],
  ["auditLog",                             U,        U,          U,      "own org's",   "own org's",    "own org's",    "every event"],
  ["verifyAuditLog",                       U,        U,          U,      F,             F,              F,              "valid"],
];

interface Viewer {
  token: string | null;
  /** The officer behind the token, when there is one (also for the deactivated and revoked ones). */
  officerId: string | null;
  organizationId: string | null;
  active: boolean;
}

interface World {
  server: TestServer;
  A: TestOrganization;
  B: TestOrganization;
  M: TestOrganization;
  kmsId: string;
  viewers: Record<ViewerName, Viewer>;
  /** An active officer of A other than the "officerOfOrg" viewer. */
  colleague: TestOfficer;
  /** A working token of each officer, by officer id. */
  liveTokens: Map<string, string>;
}

interface Cell {
  world: World;
  viewer: ViewerName;
  vars: Record<string, unknown>;
  data: Record<string, unknown>;
}

interface Operation {
  query: string;
  /** Variables of the cell; may create its target through the operator first. */
  vars(world: World, viewer: ViewerName): Promise<Record<string, unknown>>;
  /** Exact data per named outcome. */
  data: Record<string, (cell: Cell) => Promise<void> | void>;
  /** Mutations: the audit action, and whether the change is in the database. */
  action?: string;
  tookEffect?(world: World, vars: Record<string, unknown>): Promise<boolean>;
  /** The audit event's actor when it is not the viewer (enrollment has no token: the system records it). */
  auditActor?: null;
}

async function rows<T>(world: World, sql: string, params: unknown[] = []): Promise<T[]> {
  const { db } = world.server.app;
  // PostgreSQL placeholders are $1..; SQLite's ?.
  const text = db.isPostgres ? sql.replace(/\?/g, (() => { let i = 0; return () => `$${++i}`; })()) : sql;
  return (await db.dataSource.query(text, params)) as T[];
}

const activeOfficerIds = async (world: World, organizationId: string) =>
  (await rows<{ id: string }>(world, `SELECT id FROM officers WHERE "organizationId" = ? AND status = 'ACTIVE'`, [organizationId]))
    .map((r) => r.id)
    .sort();

const ownOrSomeone = (world: World, viewer: ViewerName) => world.viewers[viewer].officerId ?? world.colleague.id;

/** A second token of the officer, created by the officer (tokens are personal: nobody else can). */
async function spareTokenFor(world: World, officerId: string): Promise<string> {
  const own = world.liveTokens.get(officerId);
  if (!own) throw new Error(`no live token of ${officerId} to create a spare one with`);
  const { createApiToken } = await world.server.ok<{ createApiToken: { id: string } }>(CREATE_API_TOKEN, { id: officerId, label: "spare" }, own);
  return createApiToken.id;
}

/** A newly registered officer of A, not enrolled yet, and the code the server mailed. */
async function unenrolledOfficer(world: World): Promise<{ id: string; email: string; code: string }> {
  const email = freshEmail("enrollee");
  const { registerOfficer } = await world.server.ok<{ registerOfficer: { id: string } }>(REGISTER_OFFICER, {
    input: { organizationId: world.A.id, name: "Enrolling Officer", email },
  });
  return { id: registerOfficer.id, email, code: await world.server.enrollmentCode(email) };
}

const ENROLL = `mutation($code: String!, $label: String!) { enrollOfficer(code: $code, label: $label) { id token label officer { id enrolled } expiresAt } }`;

async function productionCsrOfA(world: World): Promise<string> {
  const pem = await csrPem(world.A, `Matrix ${Math.random().toString(36).slice(2, 8)}`);
  const { submitCsr } = await world.server.ok<{ submitCsr: { id: string } }>(
    `mutation($input: SubmitCsrInput!) { submitCsr(input: $input) { id } }`,
    { input: { organizationId: world.A.id, kind: "MTLS_CLIENT", environment: "PRODUCTION", pem } },
    world.A.officers[0]!.token,
  );
  return submitCsr.id;
}

const OPERATIONS: Record<string, Operation> = {
  me: {
    query: `{ me { role officer { id } organization { id } } }`,
    vars: async () => ({}),
    data: {
      self: ({ world, viewer, data }) => {
        const v = world.viewers[viewer];
        expect(data).toEqual({
          me: {
            role: viewer === "operator" ? "KMS_OPERATOR" : "SECURITY_OFFICER",
            officer: { id: v.officerId },
            organization: { id: v.organizationId },
          },
        });
      },
    },
  },
  organizations: {
    query: `{ organizations { id } }`,
    vars: async () => ({}),
    data: {
      "own only": ({ world, viewer, data }) => {
        expect(data).toEqual({ organizations: [{ id: world.viewers[viewer].organizationId }] });
      },
      all: async ({ world, data }) => {
        const all = (await rows<{ id: string }>(world, `SELECT id FROM organizations`)).map((r) => r.id).sort();
        const seen = (data.organizations as Array<{ id: string }>).map((o) => o.id).sort();
        expect(seen).toEqual(all);
        expect(seen).toEqual(expect.arrayContaining([world.A.id, world.B.id, world.M.id, world.kmsId]));
      },
    },
  },
  "organization(A)": {
    query: `query($id: ID!) { organization(id: $id) { id name kind } }`,
    vars: async (world) => ({ id: world.A.id }),
    data: {
      "A itself": ({ world, data }) => expect(data).toEqual({ organization: { id: world.A.id, name: world.A.name, kind: "PARTICIPANT" } }),
      null: ({ data }) => expect(data).toEqual({ organization: null }),
    },
  },
  "organization(A).officers": {
    query: `query($id: ID!) { organization(id: $id) { officers { id organization { id } } } }`,
    vars: async (world) => ({ id: world.A.id }),
    data: {
      "A's officers": async ({ world, data }) => {
        const officers = (data.organization as { officers: Array<{ id: string; organization: { id: string } }> }).officers;
        expect(officers.map((o) => o.id).sort()).toEqual(await activeOfficerIds(world, world.A.id));
        expect(new Set(officers.map((o) => o.organization.id))).toEqual(new Set([world.A.id]));
      },
      null: ({ data }) => expect(data).toEqual({ organization: null }),
    },
  },
  createOrganization: {
    query: `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { name kind country } }`,
    vars: async (_world, viewer) => ({
      input: { name: `Matrix Bank ${viewer} ${Math.random().toString(36).slice(2, 8)}`, kind: "PARTICIPANT", contactEmail: "pki@matrix.example", country: "gb" },
    }),
    data: {
      created: ({ vars, data }) =>
        expect(data).toEqual({ createOrganization: { name: (vars.input as { name: string }).name, kind: "PARTICIPANT", country: "GB" } }),
    },
    action: "organization.create",
    tookEffect: async (world, vars) =>
      (await rows(world, `SELECT id FROM organizations WHERE name = ?`, [(vars.input as { name: string }).name])).length === 1,
  },
  "registerOfficer(in A)": {
    query: REGISTER_OFFICER,
    vars: async (world) => ({ input: { organizationId: world.A.id, name: "New Officer", email: freshEmail("matrix") } }),
    data: {
      registered: ({ world, vars, data }) =>
        expect(data).toEqual({
          registerOfficer: {
            id: expect.any(String),
            email: (vars.input as { email: string }).email,
            status: "ACTIVE",
            role: "SECURITY_OFFICER",
            organization: { id: world.A.id },
          },
        }),
    },
    action: "officer.register",
    tookEffect: async (world, vars) =>
      (await rows(world, `SELECT id FROM officers WHERE email = ?`, [(vars.input as { email: string }).email])).length === 1,
  },
  "deactivateOfficer(another of A)": {
    query: `mutation($id: ID!) { deactivateOfficer(officerId: $id) { id status } }`,
    vars: async (world) => {
      const target = await world.server.ok<{ registerOfficer: { id: string } }>(REGISTER_OFFICER, {
        input: { organizationId: world.A.id, name: "Leaving Officer", email: freshEmail("leaving") },
      });
      return { id: target.registerOfficer.id };
    },
    data: {
      deactivated: ({ vars, data }) => expect(data).toEqual({ deactivateOfficer: { id: vars.id, status: "DEACTIVATED" } }),
    },
    action: "officer.deactivate",
    tookEffect: async (world, vars) =>
      (await rows<{ status: string }>(world, `SELECT status FROM officers WHERE id = ?`, [vars.id]))[0]?.status === "DEACTIVATED",
  },
  "deactivateOfficer(self)": {
    query: `mutation($id: ID!) { deactivateOfficer(officerId: $id) { id status } }`,
    vars: async (world, viewer) => ({ id: ownOrSomeone(world, viewer) }),
    data: {},
    action: "officer.deactivate",
    tookEffect: async (world, vars) => {
      // The deactivated viewer was deactivated before the matrix ran: its row says nothing about this attempt.
      if (vars.id === world.viewers.deactivated.officerId) return false;
      return (await rows<{ status: string }>(world, `SELECT status FROM officers WHERE id = ?`, [vars.id]))[0]?.status === "DEACTIVATED";
    },
  },
  "createApiToken(self)": {
    query: CREATE_API_TOKEN,
    vars: async (world, viewer) => ({ id: ownOrSomeone(world, viewer), label: `self ${viewer}` }),
    data: {
      granted: ({ vars, data }) =>
        expect(data).toEqual({
          createApiToken: { id: expect.any(String), token: expect.stringMatching(/^kp_[A-Za-z0-9_-]{43}$/), label: vars.label, officer: { id: vars.id } },
        }),
    },
    action: "token.create",
    tookEffect: async (world, vars) =>
      (await rows(world, `SELECT id FROM api_tokens WHERE "officerId" = ? AND label = ?`, [vars.id, vars.label])).length === 1,
  },
  "createApiToken(another of A)": {
    query: CREATE_API_TOKEN,
    vars: async (world, viewer) => ({ id: world.colleague.id, label: `for colleague by ${viewer}` }),
    data: {
      granted: ({ vars, data }) =>
        expect(data).toEqual({
          createApiToken: { id: expect.any(String), token: expect.stringMatching(/^kp_/), label: vars.label, officer: { id: vars.id } },
        }),
    },
    action: "token.create",
    tookEffect: async (world, vars) =>
      (await rows(world, `SELECT id FROM api_tokens WHERE "officerId" = ? AND label = ?`, [vars.id, vars.label])).length === 1,
  },
  "enrollOfficer(fresh code)": {
    query: ENROLL,
    vars: async (world, viewer) => {
      const officer = await unenrolledOfficer(world);
      return { code: officer.code, label: `enrolled next to ${viewer}`, officerId: officer.id };
    },
    data: {
      enrolled: ({ vars, data }) =>
        expect(data).toEqual({
          enrollOfficer: {
            id: expect.any(String),
            token: expect.stringMatching(/^kp_[A-Za-z0-9_-]{43}$/),
            label: vars.label,
            officer: { id: vars.officerId, enrolled: true },
            expiresAt: null,
          },
        }),
    },
    action: "officer.enroll",
    auditActor: null,
    tookEffect: async (world, vars) =>
      (await rows(world, `SELECT id FROM officers WHERE id = ? AND "enrolledAt" IS NOT NULL`, [vars.officerId])).length === 1 &&
      (await rows(world, `SELECT id FROM api_tokens WHERE "officerId" = ?`, [vars.officerId])).length === 1,
  },
  "enrollOfficer(used code)": {
    query: ENROLL,
    vars: async (world, viewer) => {
      const officer = await unenrolledOfficer(world);
      await world.server.ok(ENROLL, { code: officer.code, label: "first" }, null);
      // Past the throttle's window, so that this row's seven refusals are each the plain answer, not RATE_LIMITED.
      world.server.clock.advanceMs(16 * 60_000);
      return { code: officer.code, label: `second use by ${viewer}`, officerId: officer.id };
    },
    data: {},
    action: "officer.enroll",
    auditActor: null,
    tookEffect: async (world, vars) => (await rows(world, `SELECT id FROM api_tokens WHERE "officerId" = ?`, [vars.officerId])).length === 2,
  },
  "resendEnrollment(officer of A)": {
    query: `mutation($id: ID!) { resendEnrollment(officerId: $id) { id enrolled } }`,
    vars: async (world) => {
      const officer = await unenrolledOfficer(world);
      const [row] = await rows<{ codeHash: string }>(world, `SELECT "codeHash" FROM enrollment_codes WHERE "officerId" = ?`, [officer.id]);
      return { id: officer.id, previousHash: row!.codeHash };
    },
    data: { resent: ({ vars, data }) => expect(data).toEqual({ resendEnrollment: { id: vars.id, enrolled: false } }) },
    action: "officer.enrollment.resend",
    tookEffect: async (world, vars) => {
      const [row] = await rows<{ codeHash: string }>(world, `SELECT "codeHash" FROM enrollment_codes WHERE "officerId" = ?`, [vars.id]);
      return row!.codeHash !== vars.previousHash;
    },
  },
  "approveCsr(PRODUCTION CSR of A)": {
    query: `mutation($id: ID!) { approveCsr(csrId: $id) { id status approvals { id } } }`,
    vars: async (world) => ({ id: await productionCsrOfA(world) }),
    data: {
      approved: ({ world, vars, data }) =>
        expect(data).toEqual({ approveCsr: { id: vars.id, status: "PENDING", approvals: [{ id: world.viewers.operator.officerId }] } }),
    },
    action: "csr.approve",
    tookEffect: async (world, vars) =>
      (await rows(world, `SELECT id FROM certificate_signing_requests WHERE id = ? AND "approvedById" IS NOT NULL`, [vars.id])).length === 1,
  },
  "revokeApiToken(own spare token)": {
    query: `mutation($id: ID!) { revokeApiToken(tokenId: $id) }`,
    vars: async (world, viewer) => {
      const v = world.viewers[viewer];
      return { id: await spareTokenFor(world, v.active || viewer === "revoked" ? v.officerId! : world.colleague.id) };
    },
    data: { revoked: ({ data }) => expect(data).toEqual({ revokeApiToken: true }) },
    action: "token.revoke",
    tookEffect: async (world, vars) =>
      (await rows<{ revokedAt: string | null }>(world, `SELECT "revokedAt" FROM api_tokens WHERE id = ?`, [vars.id]))[0]?.revokedAt != null,
  },
  "revokeApiToken(another of A's token)": {
    query: `mutation($id: ID!) { revokeApiToken(tokenId: $id) }`,
    vars: async (world) => ({ id: await spareTokenFor(world, world.colleague.id) }),
    data: { revoked: ({ data }) => expect(data).toEqual({ revokeApiToken: true }) },
    action: "token.revoke",
    tookEffect: async (world, vars) =>
      (await rows<{ revokedAt: string | null }>(world, `SELECT "revokedAt" FROM api_tokens WHERE id = ?`, [vars.id]))[0]?.revokedAt != null,
  },
  auditLog: {
    query: `{ auditLog(first: 500) { nodes { seq } pageInfo { hasNextPage } } }`,
    vars: async () => ({}),
    data: {
      "own org's": async ({ world, viewer, data }) => {
        const log = data.auditLog as { nodes: Array<{ seq: number }>; pageInfo: { hasNextPage: boolean } };
        const expected = (await auditRows(world.server)).filter((r) => r.organizationId === world.viewers[viewer].organizationId).map((r) => r.seq);
        expect(log.pageInfo.hasNextPage).toBe(false);
        expect(log.nodes.map((n) => n.seq)).toEqual(expected);
        expect(expected.length).toBeGreaterThan(0);
      },
      "every event": async ({ world, data }) => {
        const log = data.auditLog as { nodes: Array<{ seq: number }>; pageInfo: { hasNextPage: boolean } };
        const all = (await auditRows(world.server)).map((r) => r.seq);
        expect(log.pageInfo.hasNextPage).toBe(false);
        expect(log.nodes.map((n) => n.seq)).toEqual(all);
      },
    },
  },
  verifyAuditLog: {
    query: `{ verifyAuditLog { valid checkedEvents firstInvalidSeq } }`,
    vars: async () => ({}),
    data: {
      valid: async ({ world, data }) =>
        expect(data).toEqual({ verifyAuditLog: { valid: true, checkedEvents: (await auditRows(world.server)).length, firstInvalidSeq: null } }),
    },
  },
};

async function buildWorld(server: TestServer): Promise<World> {
  const A = await createOrganization(server, { name: "Matrix Bank A", officerCount: 2 });
  const B = await createOrganization(server, { name: "Matrix Bank B", officerCount: 1 });
  const M = await createOrganization(server, { name: "Matrix Services MSP", kind: "MSP", officerCount: 1 });
  const gone = await addOfficer(server, A.id, freshEmail("gone"));
  await server.ok(`mutation($id: ID!) { deactivateOfficer(officerId: $id) { id } }`, { id: gone.id });
  const revoked = await addOfficer(server, A.id, freshEmail("revoked"));
  // The revoked viewer's officer keeps another token of its own, to make spare tokens with.
  const { createApiToken: kept } = await server.ok<{ createApiToken: { token: string } }>(CREATE_API_TOKEN, { id: revoked.id, label: "kept" }, revoked.token);
  await server.ok(`mutation($id: ID!) { revokeApiToken(tokenId: $id) }`, { id: revoked.tokenId });
  const { me } = await server.ok<{ me: { officer: { id: string }; organization: { id: string } } }>(`{ me { officer { id } organization { id } } }`);
  const liveTokens = new Map<string, string>([
    ...[...A.officers, ...B.officers, ...M.officers].map((o) => [o.id, o.token] as [string, string]),
    [revoked.id, kept.token],
    [me.officer.id, server.operatorToken],
  ]);
  const officerViewer = (o: TestOfficer, organizationId: string): Viewer => ({ token: o.token, officerId: o.id, organizationId, active: true });
  return {
    server,
    A,
    B,
    M,
    kmsId: me.organization.id,
    colleague: A.officers[1]!,
    liveTokens,
    viewers: {
      anonymous: { token: null, officerId: null, organizationId: null, active: false },
      deactivated: { token: gone.token, officerId: gone.id, organizationId: A.id, active: false },
      revoked: { token: revoked.token, officerId: revoked.id, organizationId: A.id, active: false },
      officerOfOrg: officerViewer(A.officers[0]!, A.id),
      otherOrgOfficer: officerViewer(B.officers[0]!, B.id),
      mspOfficer: officerViewer(M.officers[0]!, M.id),
      operator: { token: server.operatorToken, officerId: me.officer.id, organizationId: me.organization.id, active: true },
    },
  };
}

function printMatrix(title: string, actual: Map<string, string>): void {
  const header = ["operation", ...VIEWERS];
  const body = MATRIX.map(([op, ...cells]) =>
    [op, ...cells.map((expected, i) => {
      const got = actual.get(`${op}|${VIEWERS[i]}`);
      return got === undefined ? `${expected} (not run)` : got === expected ? expected : `${expected} ≠ ${got}`;
    })],
  );
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => c.padEnd(widths[i]!)).join(" | ");
  console.log([`authorization matrix on ${title}`, line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...body.map(line)].join("\n"));
}

/** What a response was, in the vocabulary of the matrix. */
function outcomeOf(result: GraphQLResponse<Record<string, unknown>>, expected: string): string {
  if (result.errors?.length) {
    const { code, reason } = result.errors[0]!.extensions ?? {};
    return expected.includes("/") ? `${code}/${reason}` : String(code);
  }
  return expected; // data outcomes are checked exactly by the operation's data entry
}

const postgres = await available("postgres");

describe.each<DbKind>(["sqlite", "postgres"])("authorization matrix on %s", (db) => {
  describe.skipIf(db === "postgres" && !postgres)(db, () => {
    let world: World;
    const actual = new Map<string, string>();

    beforeAll(async () => {
      world = await buildWorld(await startTestServer({ db }));
    });
    afterAll(async () => {
      printMatrix(db, actual);
      await world?.server.close();
    });

    it("should have a row for every operation and a column for every viewer", () => {
      expect(MATRIX.map(([op]) => op).sort()).toEqual(Object.keys(OPERATIONS).sort());
      for (const [, ...cells] of MATRIX) expect(cells).toHaveLength(VIEWERS.length);
    });

    for (const [opName, ...cells] of MATRIX) {
      VIEWERS.forEach((viewer, i) => {
        const expected = cells[i]!;
        it(`should answer ${opName} as ${viewer} with ${expected}`, async () => {
          const op = OPERATIONS[opName]!;
          const vars = await op.vars(world, viewer);
          const auditBefore = (await auditRows(world.server)).length;
          const result = await world.server.gql<Record<string, unknown>>(op.query, vars, world.viewers[viewer].token);
          actual.set(`${opName}|${viewer}`, outcomeOf(result, expected));

          const isError = ERROR_CODES.has(expected.split("/")[0]!);
          if (isError) {
            const [code, reason] = expected.split("/");
            expect(result.errors, JSON.stringify(result)).toHaveLength(1);
            expect(result.errors![0]!.extensions?.code).toBe(code);
            if (reason) expect(result.errors![0]!.extensions?.reason).toBe(reason);
            // Nothing leaks next to the error.
            for (const value of Object.values(result.data ?? {})) expect(value).toBeNull();
          } else {
            expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
            const check = op.data[expected];
            expect(check, `no data check named "${expected}" for ${opName}`).toBeDefined();
            await check!({ world, viewer, vars, data: result.data! });
          }

          if (op.action) {
            // A mutation: exactly one audit event, with its outcome; the change happened only on SUCCESS.
            const after = await auditRows(world.server);
            expect(after).toHaveLength(auditBefore + 1);
            const event = after[after.length - 1]!;
            expect(event.action).toBe(op.action);
            expect(event.outcome).toBe(isError ? expected.split("/")[0] : "SUCCESS");
            const viewerActor = world.viewers[viewer].token && world.viewers[viewer].active ? world.viewers[viewer].officerId : null;
            expect(event.actorId).toBe(op.auditActor === null ? null : viewerActor);
            expect(await op.tookEffect!(world, vars)).toBe(!isError);
          }
        });
      });
    }
  });
});
