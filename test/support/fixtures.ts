import type { TestServer } from "./server.js";

export interface TestOfficer {
  id: string;
  email: string;
  token: string;
  tokenId: string;
}

export interface TestOrganization {
  id: string;
  name: string;
  country: string;
  officers: TestOfficer[];
}

let counter = 0;

/** Creates an organization through the API with `officerCount` active, enrolled officers, each with a token. */
export async function createOrganization(
  server: TestServer,
  opts: { name?: string; kind?: "PARTICIPANT" | "MSP"; country?: string; officerCount?: number } = {},
): Promise<TestOrganization> {
  counter += 1;
  const name = opts.name ?? `Test Bank ${counter} ${Math.random().toString(36).slice(2, 7)}`;
  const country = opts.country ?? "GB";
  const { createOrganization: org } = await server.ok<{ createOrganization: { id: string } }>(
    `mutation($input: CreateOrganizationInput!) { createOrganization(input: $input) { id } }`,
    { input: { name, kind: opts.kind ?? "PARTICIPANT", contactEmail: `pki@${name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}.example`, country } },
  );
  const officers: TestOfficer[] = [];
  for (let i = 0; i < (opts.officerCount ?? 2); i++) {
    officers.push(await addOfficer(server, org.id, `officer${i + 1}-${counter}@example.com`));
  }
  return { id: org.id, name, country, officers };
}

/**
 * Registers an officer (as the operator, or as `registrarToken`), reads the
 * enrollment code from the email the server sent, and enrolls: the officer's
 * first token is theirs alone, as in production.
 */
export async function addOfficer(server: TestServer, organizationId: string, email: string, registrarToken?: string): Promise<TestOfficer> {
  const { registerOfficer } = await server.ok<{ registerOfficer: { id: string } }>(
    `mutation($input: RegisterOfficerInput!) { registerOfficer(input: $input) { id } }`,
    { input: { organizationId, name: `Officer ${email}`, email } },
    registrarToken ?? server.operatorToken,
  );
  const code = await server.enrollmentCode(email);
  const grant = await enroll(server, code);
  return { id: registerOfficer.id, email, token: grant.token, tokenId: grant.id };
}

/** enrollOfficer without a token; fails the test on any error. */
export async function enroll(server: TestServer, code: string, label = "test"): Promise<{ id: string; token: string }> {
  const { enrollOfficer } = await server.ok<{ enrollOfficer: { id: string; token: string } }>(
    `mutation($code: String!, $label: String!) { enrollOfficer(code: $code, label: $label) { id token } }`,
    { code, label },
    null,
  );
  return enrollOfficer;
}

const secondOperators = new WeakMap<TestServer, Promise<TestOfficer>>();

/** A KMS operator other than the bootstrap one (registered and enrolled once per server). */
export function secondOperator(server: TestServer): Promise<TestOfficer> {
  let operator = secondOperators.get(server);
  if (!operator) {
    operator = addOperator(server, `second-operator-${Math.random().toString(36).slice(2, 8)}@kms.example`);
    secondOperators.set(server, operator);
    operator.catch(() => secondOperators.delete(server));
  }
  return operator;
}

/** Registers and enrolls another KMS operator. */
export async function addOperator(server: TestServer, email: string): Promise<TestOfficer> {
  const { me } = await server.ok<{ me: { organization: { id: string } } }>(`{ me { organization { id } } }`);
  return addOfficer(server, me.organization.id, email);
}

/**
 * Dual control: the second operator approves the CSR, so that the bootstrap
 * operator (server.operatorToken) may then sign it. Needed for PRODUCTION
 * (the default KEYPORTAL_DUAL_CONTROL).
 */
export async function approveAsSecondOperator(server: TestServer, csrId: string): Promise<TestOfficer> {
  const approver = await secondOperator(server);
  await server.ok(`mutation($id: ID!) { approveCsr(csrId: $id) { id } }`, { id: csrId }, approver.token);
  return approver;
}

/** Approves (second operator) and signs (bootstrap operator) a CSR; returns the certificate's id and serial. */
export async function signUnderDualControl(
  server: TestServer,
  csrId: string,
  validityDays?: number,
): Promise<{ id: string; serialNumber: string }> {
  await approveAsSecondOperator(server, csrId);
  const { signCsr } = await server.ok<{ signCsr: { id: string; serialNumber: string } }>(
    `mutation($input: SignCsrInput!) { signCsr(input: $input) { id serialNumber } }`,
    { input: { csrId, ...(validityDays ? { validityDays } : {}) } },
  );
  return signCsr;
}

/** Dual control of KMS rotation: the second operator approves, so that the bootstrap operator may then rotate. */
export async function approveKmsRotationAsSecondOperator(server: TestServer, environment: "MTF" | "PRODUCTION", purpose: string): Promise<void> {
  const approver = await secondOperator(server);
  await server.ok(
    `mutation($env: Environment!, $purpose: KmsCertificatePurpose!) { approveKmsRotation(environment: $env, purpose: $purpose) { id } }`,
    { env: environment, purpose },
    approver.token,
  );
}
