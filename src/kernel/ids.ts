import { randomUUID } from "node:crypto";

/** The id of a new row: a random UUID (v4), never derived from its content. */
export const newId = (): string => randomUUID();

