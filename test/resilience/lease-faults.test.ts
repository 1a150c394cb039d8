import { describe, expect, it, vi } from "vitest";
import { DatabaseLease } from "../../src/notifications/lease.js";
import { eventually, issueCertificate } from "../notifications/helpers.js";
import { available } from "../support/deps.js";
import type { TestServer } from "../support/server.js";
import { type FaultyInstance, post, useFaultyCluster } from "./helpers.js";

const ready = (await available("postgres", "redis")) && (await available("openssl"));
const CERTIFICATES = 6;

describe.skipIf(!ready)("the expiry-scan lease under PostgreSQL faults", () => {
  const setup = useFaultyCluster("kp-lease-");

  /** Certificates that are due a reminder at the next scan: 20 days left, inside the 30-day threshold. */
  async function dueCertificates(): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < CERTIFICATES; i++) ids.push((await issueCertificate(setup.cluster().a.server, setup.tmp, setup.org(), { validityDays: 20 })).id);
    setup.cluster().clock.advanceDays(1); // past any scan made during issuance
    return ids;
  }

  async function reminders(server: TestServer, ids: string[]): Promise<number> {
    const rows = (await server.app.db.dataSource.query(
      `SELECT COUNT(*) AS n FROM notifications WHERE "certificateId" = ANY($1) AND type = 'CERTIFICATE_EXPIRING'`,
      [ids],
    )) as Array<{ n: string }>;
    return Number(rows[0]!.n);
  }

  /** Injects the fault right after `instance` takes the expiry-scan lease. */
  function cutAfterAcquire(instance: FaultyInstance, fault: "refuse" | "silence") {
    const acquire = DatabaseLease.prototype.tryAcquire;
    let armed = true;
    vi.spyOn(DatabaseLease.prototype, "tryAcquire").mockImplementation(async function (this: DatabaseLease, holder: string) {
      const held = await acquire.call(this, holder);
      if (held && armed && this === instance.server.app.services.expiryScanner["deps"].lease) {
        armed = false;
        instance.pg[fault]();
      }
      return held;
    });
  }

  const scanOn = (server: TestServer) => post<{ runExpiryScan: number }>(server, `mutation { runExpiryScan }`, {}, { timeoutMs: 15_000 });

  it("should free the lease as soon as the database returns after a cut during a scan, and never answer 0 while a scan holds it", async () => {
    const { a, b } = setup.cluster();
    const ids = await dueCertificates();
    cutAfterAcquire(a, "refuse");
    await expect(a.server.app.services.expiryScanner.runOnce()).rejects.toThrow();
    // A could not release: B is told a scan is in progress, not that nothing is due.
    const busy = await scanOn(b.server);
    expect(busy.body.errors?.[0]?.extensions).toEqual({ code: "CONFLICT", reason: "SCAN_IN_PROGRESS" });
    expect(busy.body.data?.runExpiryScan ?? null).toBeNull();
    a.pg.heal();
    // The release is retried: well before the TTL (which the standing clock never reaches), B scans everything due.
    const emitted = await eventually(async () => {
      const outcome = await scanOn(b.server);
      return outcome.body.data ? outcome.body.data.runExpiryScan : undefined;
    }, "B's scan after the database returned");
    expect(emitted).toBe(CERTIFICATES);
    expect(await reminders(b.server, ids)).toBe(CERTIFICATES);
  }, 60_000);

  it("should let another instance take over within one TTL when the holder dies mid-scan", async () => {
    const { a, b, clock } = setup.cluster();
    const ids = await dueCertificates();
    cutAfterAcquire(a, "silence"); // A holds the lease and can neither renew nor release it: dead, as far as the database knows
    const onA = a.server.app.services.expiryScanner.runOnce().catch(() => "failed");
    await eventually(() => (a.pg.mode === "silent" ? true : undefined), "A to hold the lease");
    const busy = await scanOn(b.server);
    expect(busy.body.errors?.[0]?.extensions).toEqual({ code: "CONFLICT", reason: "SCAN_IN_PROGRESS" });
    // One TTL (2 s here) later the lease has lapsed; B's own scheduled retry takes over without anyone asking.
    clock.advanceMs(2001);
    await eventually(async () => ((await reminders(b.server, ids)) === CERTIFICATES ? true : undefined), "B to take over the scan", 8000);
    expect(await onA).toBe("failed");
  }, 60_000);
});
