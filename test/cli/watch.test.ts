import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/commands.js";
import { addOfficer, createOrganization, type TestOrganization } from "../support/fixtures.js";
import { startTestServer, type TestServer } from "../support/server.js";

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

  it("should say the token was refused, with exit code 2", async () => {
    const result = await watch([], "kp_not_a_token", 1);
    expect(result.code).toBe(2);
    expect(result.errors.join("\n")).toContain("refused the token");
  });
});
