import { badInput } from "../kernel/errors.js";

const SERIAL = /^[0-9a-f]{1,64}$/;

/**
 * Serials are stored as the hex of their DER integer content (even length,
 * no extra leading zero byte); clients may type them with colons, upper case
 * or without the leading zero nibble, as openssl and browsers show them.
 */
export function canonicalSerial(input: string): string {
  const hex = input.trim().toLowerCase().replace(/[:\s]/g, "");
  if (!SERIAL.test(hex)) throw badInput("INVALID_SERIAL", "serialNumber must be hexadecimal, e.g. 0f3a9c... or 0F:3A:9C...");
  const stripped = hex.replace(/^0+(?=.)/, "");
  return stripped.length % 2 === 1 ? `0${stripped}` : stripped;
}
