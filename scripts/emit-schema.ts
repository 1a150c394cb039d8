/** Writes schema.graphql from the code: `npm run schema`. */
import "reflect-metadata";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildKeyPortalSchema, printKeyPortalSchema } from "../src/graphql/schema.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const target = path.join(root, "schema.graphql");
writeFileSync(target, printKeyPortalSchema(await buildKeyPortalSchema()));
console.log(`wrote ${path.relative(process.cwd(), target) || target}`);
