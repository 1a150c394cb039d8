/** Organizations through the API, with enrolled officers. */
import { addOfficer, type TestOfficer } from "./officers.js";
import type { TestServer } from "./server.js";

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

