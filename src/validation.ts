import { badInput, type ReasonOf } from "./kernel/errors.js";

export interface TextRule {
  /** The input's name, for the message. */
  field: string;
  /** The BAD_USER_INPUT reason. */
  reason: ReasonOf<"BAD_USER_INPUT">;
  max: number;
}

/** Control and format characters (bidi overrides, zero-width...) have no place in names that end up in certificates and emails. */
const CONTROL_OR_FORMAT = /[\p{Cc}\p{Cf}]/u;
const CONTROL = /[\p{Cc}]/u;

/** A one-line name or label: trimmed, inner whitespace collapsed, 1 to max characters, no control or format characters. */
export function singleLine(raw: string, rule: TextRule): string {
  const text = raw.trim().replace(/\s+/g, " ");
  if (text.length === 0 || text.length > rule.max) throw badInput(rule.reason, `${rule.field} must be 1 to ${rule.max} characters`);
  if (CONTROL_OR_FORMAT.test(text)) throw badInput(rule.reason, `${rule.field} must not contain control characters`);
  return text;
}

/** Free text people type (notes, reasons): trimmed, at most max characters, newlines and tabs allowed; empty means none. */
export function freeText(raw: string | null | undefined, rule: TextRule): string | null {
  if (raw == null) return null;
  const text = raw.trim();
  if (text.length === 0) return null;
  if (text.length > rule.max || CONTROL.test(text.replace(/[\n\t]/g, ""))) {
    throw badInput(rule.reason, `${rule.field} must be at most ${rule.max} printable characters`);
  }
  return text;
}
