import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/commands.js";
import { eventually } from "../notifications/helpers.js";
import { makeTempDir } from "../pki/helpers.js";
import { issue } from "../certificates/helpers.js";
import { available } from "../support/deps.js";
import { addOfficer } from "../support/officers.js";
import { createOrganization, type TestOrganization } from "../support/organizations.js";
import { startTestServer, type TestServer } from "../support/server.js";

const hasOpenssl = await available("openssl");

describe("keyportal watch", () => {
  let server: TestServer;
  let org: TestOrganization;
  beforeAll(async () => {
    server = await startTestServer();
    org = await createOrganization(server, { country: "DK" });
  });
  afterAll(async () => {
    await server?.close();
  });

  /** Runs `keyportal watch ...` until `count` lines arrived (or 10 s), then interrupts it like Ctrl-C. */
  async function watch(args: string[], token: string, count: number, whileWatching: () => Promise<void> = async () => undefined) {
    const lines: string[] = [];
    const errors: string[] = [];
    const interrupt = new AbortController();
    let enough: () => void = () => undefined;
    const gotEnough = new Promise<void>((resolve) => (enough = resolve));
    const running = main(
      ["watch", ...args],
      { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: token },
      (line) => {
        lines.push(line);
        if (lines.length >= count) enough();
      },
      (line) => errors.push(line),
      interrupt.signal,
    );
    await new Promise((r) => setTimeout(r, 300));
    await whileWatching();
    await Promise.race([gotEnough, running, new Promise((r) => setTimeout(r, 10_000))]);
    interrupt.abort();
    return { code: await running, lines, errors };
  }

  it("should print each new notification of the officer's organization as a JSON line and stop cleanly on interrupt", async () => {
    const result = await watch(["--json", "--types", "officer_registered"], org.officers[0]!.token, 1, async () => {
      await addOfficer(server, org.id, "watched@example.com");
    });
    expect(result.code).toBe(0);
    expect(result.lines).toHaveLength(1);
    expect(JSON.parse(result.lines[0]!)).toMatchObject({ type: "OFFICER_REGISTERED" });
    expect(JSON.parse(result.lines[0]!).message).toContain("watched@example.com");
  });

  it("should replay what happened after --after before following live", async () => {
    const result = await watch(["--after", "0", "--types", "OFFICER_REGISTERED"], org.officers[1]!.token, 3);
    expect(result.code).toBe(0);
    // The organization's two fixture officers and the one registered in the previous test.
    expect(result.lines.map((l) => l.split("\t")[2])).toEqual(["OFFICER_REGISTERED", "OFFICER_REGISTERED", "OFFICER_REGISTERED"]);
    const ids = result.lines.map((l) => Number(l.split("\t")[0]));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
  });

  it.skipIf(!hasOpenssl)("should print a CSR_SIGNED's certificate id and serial, and the download command and URL", async () => {
    const tmp = makeTempDir("kp-watch-");
    try {
      let issued: { id: string; serialNumber: string } | undefined;
      const result = await watch(["--types", "CSR_SIGNED"], org.officers[0]!.token, 1, async () => {
        issued = await issue(server, tmp.path, org, { environment: "MTF" });
      });
      expect(result.code).toBe(0);
      const [line, next] = result.lines[0]!.split("\n");
      expect(line).toContain(`certificate=${issued!.id} serial=${issued!.serialNumber}`);
      expect(next).toMatch(new RegExp(`^  next: keyportal download --certificate ${issued!.id} --format pem --out client-\\d+\\.pem`));
      expect(next).toContain(`${server.url}/certificates/${issued!.id}.pem`);
      const json = await watch(["--json", "--after", String(Number(result.lines[0]!.split("\t")[0]) - 1), "--types", "CSR_SIGNED"], org.officers[0]!.token, 1);
      expect(JSON.parse(json.lines[0]!)).toMatchObject({ type: "CSR_SIGNED", certificate: { id: issued!.id }, next: expect.stringContaining(`--certificate ${issued!.id}`) });
    } finally {
      tmp.cleanup();
    }
  });

  it("should say the token was refused, with exit code 2", async () => {
    const result = await watch([], "kp_not_a_token", 1);
    expect(result.code).toBe(2);
    expect(result.errors.join("\n")).toContain("refused the token");
  });
});

describe("keyportal watch across a server restart", () => {
  it("should reconnect with backoff and resume after its last cursor, with no gap and no duplicate", async () => {
    let server = await startTestServer();
    const { dataDir, operatorToken } = server;
    const port = new URL(server.url).port;
    const org = await createOrganization(server, { country: "SE" });
    const lines: string[] = [];
    const status: string[] = [];
    const interrupt = new AbortController();
    const running = main(
      ["watch", "--json", "--types", "OFFICER_REGISTERED"],
      { KEYPORTAL_URL: server.url, KEYPORTAL_TOKEN: org.officers[0]!.token, KEYPORTAL_WATCH_BACKOFF_MS: "400" },
      (line) => lines.push(line),
      (line) => status.push(line),
      interrupt.signal,
    );
    const emails = () => lines.map((l) => (JSON.parse(l) as { message: string }).message.match(/<?([\w.-]+@example\.com)/)?.[1]);
    try {
      // Once watch has read the newest cursor, before its first line: still seen (the subscription replays after that cursor).
      await new Promise((r) => setTimeout(r, 500));
      await addOfficer(server, org.id, "before-restart-1@example.com");
      await eventually(() => (lines.length >= 1 ? true : undefined), "the first line");
      await addOfficer(server, org.id, "before-restart-2@example.com");
      await eventually(() => (lines.length >= 2 ? true : undefined), "the second line");

      await server.close({ keepData: true });
      server = await startTestServer({ dataDir, operatorToken, env: { PORT: port } });
      // These happen while the CLI waits to reconnect: the resumed subscription must replay them.
      await addOfficer(server, org.id, "while-away-1@example.com");
      await addOfficer(server, org.id, "while-away-2@example.com");
      await eventually(() => (lines.length >= 4 ? true : undefined), "the replayed lines", 20_000);
      await addOfficer(server, org.id, "after-reconnect@example.com");
      await eventually(() => (lines.length >= 5 ? true : undefined), "the live line after reconnecting");
      await new Promise((r) => setTimeout(r, 300));

      expect(emails()).toEqual([
        "before-restart-1@example.com",
        "before-restart-2@example.com",
        "while-away-1@example.com",
        "while-away-2@example.com",
        "after-reconnect@example.com",
      ]);
      const ids = lines.map((l) => Number((JSON.parse(l) as { id: string }).id));
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);
      expect(status.join("\n")).toMatch(/connection lost .*reconnecting in \d+\.\d s, resuming after notification \d+/);
    } finally {
      interrupt.abort();
      expect(await running).toBe(0);
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
