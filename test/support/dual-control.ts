/** Dual control in tests: a second operator approves what the bootstrap operator then signs or rotates. */
import { secondOperator, type TestOfficer } from "./officers.js";
import type { TestServer } from "./server.js";

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
