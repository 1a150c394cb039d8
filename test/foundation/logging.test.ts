import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { prettyLine } from "../../src/logger.js";

describe("log format", () => {
  it("should default to pretty on a terminal and to JSON lines otherwise, and follow LOG_FORMAT either way", () => {
    expect(loadConfig({}, "/tmp", true).logFormat).toBe("pretty");
    expect(loadConfig({}, "/tmp", false).logFormat).toBe("json");
    expect(loadConfig({ LOG_FORMAT: "json" }, "/tmp", true).logFormat).toBe("json");
    expect(loadConfig({ LOG_FORMAT: "PRETTY" }, "/tmp", false).logFormat).toBe("pretty");
  });

  it("should print a pino line as time, level name, message and key=value fields, with an error's stack indented", () => {
    const time = Date.UTC(2026, 11, 1, 21, 5, 7, 89);
    const line = prettyLine(JSON.stringify({ level: 30, time, pid: 1, hostname: "h", service: "keyportal", msg: "listening", url: "http://127.0.0.1:4000" }));
    expect(line).toBe("21:05:07.089 INFO  listening  url=http://127.0.0.1:4000\n");
    const failed = prettyLine(
      JSON.stringify({ level: 50, time, msg: "send failed", attempt: 2, err: { type: "Error", message: "connect ECONNREFUSED", stack: "Error: connect ECONNREFUSED\n    at a (x.js:1:1)" } }),
    );
    expect(failed).toBe('21:05:07.089 ERROR send failed  attempt=2 err="Error: connect ECONNREFUSED"\n    at a (x.js:1:1)\n');
  });

  it("should never pass control characters from a logged value to the terminal raw", () => {
    const line = prettyLine(JSON.stringify({ level: 40, time: 0, msg: "odd\u001b[2Jinput", subject: "CN=\u001b]0;x\u0007" }));
    expect(line).not.toMatch(/[\u0000-\u0008\u000b-\u001f]/);
    expect(line).toContain("\\u001b");
  });
});
