#!/usr/bin/env node
// Every installed package whose package.json declares engines.node must accept
// every Node version that this project's own `engines.node` admits; prints the
// ones that do not and exits 1 (what `npm ci` would warn about as EBADENGINE).
import { readdirSync, readFileSync, existsSync } from "node:fs";
import path from "node:path";
import semver from "semver";

export function enginesOutside(root) {
  const own = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).engines?.node;
  if (!own) return [{ name: "(this project)", version: "", node: "no engines.node in package.json" }];
  const lock = JSON.parse(readFileSync(path.join(root, "package-lock.json"), "utf8"));
  const bad = [];
  for (const [where, entry] of Object.entries(lock.packages ?? {})) {
    if (!where.startsWith("node_modules/") || !existsSync(path.join(root, where, "package.json"))) continue;
    const pkg = JSON.parse(readFileSync(path.join(root, where, "package.json"), "utf8"));
    const node = pkg.engines?.node;
    if (typeof node !== "string" || !semver.validRange(node)) continue;
    if (!semver.subset(own, node)) bad.push({ name: pkg.name, version: pkg.version, node, dev: entry.dev === true });
  }
  return bad;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const bad = enginesOutside(process.cwd());
  for (const b of bad) console.error(`${b.name}@${b.version} wants node ${b.node}`);
  if (bad.length) process.exit(1);
  console.log("every installed package supports this project's engines.node");
}
