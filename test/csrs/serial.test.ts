import { describe, expect, it } from "vitest";
import { canonicalSerial } from "../../src/certificates/serial.js";

describe("serial numbers typed by people", () => {
  it("should find a serial whose first byte is below 0x10 however it is typed", () => {
    expect(canonicalSerial("0f3a9c")).toBe("0f3a9c");
    expect(canonicalSerial("f3a9c")).toBe("0f3a9c");
    expect(canonicalSerial("0F:3A:9C")).toBe("0f3a9c");
    expect(canonicalSerial("00:0f:3a:9c")).toBe("0f3a9c");
  });

  it("should refuse what is not hexadecimal with BAD_USER_INPUT / INVALID_SERIAL", () => {
    expect(() => canonicalSerial("xyz")).toThrowError(expect.objectContaining({ code: "BAD_USER_INPUT", reason: "INVALID_SERIAL" }));
  });
});
