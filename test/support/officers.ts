/** Officers and operators through the API: registration, the enrollment email, enrollment and the first token. */
import type { TestServer } from "./server.js";

export interface TestOfficer {
  id: string;
  email: string;
  token: string;
  tokenId: string;
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

