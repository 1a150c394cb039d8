import type { ValueTransformer } from "typeorm";

/**
 * Instants are stored as fixed-width ISO-8601 UTC strings (24 chars), which
 * sort and compare correctly as text on SQLite and PostgreSQL alike.
 */
export const isoInstant: ValueTransformer = {
  to: (value: Date | null | undefined) => (value == null ? value : value.toISOString()),
  from: (value: string | null) => (value == null ? null : new Date(value)),
};

export const iso = (d: Date): string => d.toISOString();

/** JSON text column (portable): arrays of enum values and the like. */
export const jsonText: ValueTransformer = {
  to: (value: unknown) => (value == null ? value : JSON.stringify(value)),
  from: (value: string | null) => (value == null ? null : JSON.parse(value)),
};

/** PostgreSQL returns bigint as string; SQLite as number. Store sequence numbers as bigint, read as number. */
export const bigintNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null) => (value == null ? null : Number(value)),
};
