import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Certificate } from "../../src/certificates/certificate.entity.js";
import { CertificateSigningRequest } from "../../src/csrs/csr.entity.js";
import { Delegation } from "../../src/delegations/delegation.entity.js";
import { createLoaders, type LoaderSources } from "../../src/graphql/context.js";
import { buildKeyPortalSchema } from "../../src/graphql/schema.js";
import { NotificationResolver } from "../../src/notifications/notification.resolver.js";
import { NotificationRefs } from "../../src/notifications/refs.js";
import { Officer } from "../../src/officers/officer.entity.js";
import { Organization } from "../../src/organizations/organization.entity.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";
import { recordStatements, type Statement } from "../support/statements.js";

describe("per-request loaders", () => {
  let server: TestServer;
  let sources: LoaderSources;
  let orgs: TestOrganization[];
  let statements: Statement[];
  const organizationReads = () => statements.filter((s) => /^\s*SELECT/i.test(s.sql) && /FROM "organizations?"/i.test(s.sql)).length;

  beforeAll(async () => {
    server = await startTestServer();
    orgs = [await createOrganization(server, { officerCount: 0 }), await createOrganization(server, { officerCount: 0 })];
    const { db } = server.app;
    // The server's own sources (app.ts), on its database.
    sources = {
      organizationsByIds: (ids) => db.findByIds(Organization, ids),
      officersByIds: (ids) => db.findByIds(Officer, ids),
      certificatesByIds: (ids) => db.findByIds(Certificate, ids),
      csrsByIds: (ids) => db.findByIds(CertificateSigningRequest, ids),
      delegationsByIds: (ids) => db.findByIds(Delegation, ids),
    };
    statements = recordStatements(server);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should hold no loader until a field loads through one, then only that one, batching its keys", async () => {
    const loaders = createLoaders(sources);
    expect(loaders.held).toBe(0);
    statements.length = 0;
    const found = await Promise.all(orgs.map((o) => loaders.organization.load(o.id)));
    expect(found.map((o) => o?.id)).toEqual(orgs.map((o) => o.id));
    expect(loaders.held).toBe(1);
    expect(organizationReads()).toBe(1);
    expect(loaders.organization).toBe(loaders.organization);
  });

  it("should drop every loader on clearAll, so a subscription holds none between events and its next event reads again", async () => {
    const loaders = createLoaders(sources);
    await loaders.organization.load(orgs[0]!.id);
    loaders.lazy("officersByOrganization", () => new Map<string, string>());
    expect(loaders.held).toBe(2);
    loaders.clearAll();
    expect(loaders.held).toBe(0);
    statements.length = 0;
    await loaders.organization.load(orgs[0]!.id);
    expect(organizationReads()).toBe(1);
    expect(loaders.held).toBe(1);
  });

  it("should resolve each subscription event to the event itself, at once, after dropping the loaders of earlier events", async () => {
    const { services, db } = server.app;
    const resolver = new NotificationResolver(services.notifications, services.policy, new NotificationRefs(db));
    const schema = await buildKeyPortalSchema(new Map<Function, object>([[NotificationResolver, resolver]]));
    const field = schema.getSubscriptionType()!.getFields().notifications!;
    const loaders = createLoaders(sources);
    await loaders.organization.load(orgs[0]!.id); // an earlier event's nested field
    const event = { id: "1", type: "OFFICER_REGISTERED" };
    const resolved = field.resolve!(event, { types: ["OFFICER_REGISTERED"] }, { viewer: null, loaders }, {} as never);
    expect(resolved).toBe(event);
    expect(loaders.held).toBe(0);
  });
});
