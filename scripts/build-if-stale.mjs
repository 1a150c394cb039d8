#!/usr/bin/env node
// `npm start`'s prestart: builds the server (tsc) and the GraphiQL page (vite)
// only when their inputs changed since the last build of this script, so a
// second `npm start` starts at once. An input is a file's path, size and
// modification time; a stamp file next to each output remembers them, so an
// added, removed or edited file all count as a change.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** What each part is built from, what it produces, and the npm script that builds it. */
export const PARTS = {
  server: {
    inputs: ["src", "scripts", "bench", "ormconfig.ts", "tsconfig.json", "package-lock.json"],
    skip: [],
    output: "dist/src/main.js",
    stamp: "dist/.build-server",
    script: "build:server",
  },
  web: {
    inputs: ["web", "package-lock.json"],
    skip: ["web/dist"],
    output: "dist/web/index.html",
    stamp: "dist/web/.build-web",
    script: "build:web",
  },
};

function listFiles(root, rel, skip, out) {
  const full = path.join(root, rel);
  if (!existsSync(full) || skip.includes(rel)) return;
  const stat = statSync(full);
  if (stat.isDirectory()) {
    for (const name of readdirSync(full).sort()) listFiles(root, path.posix.join(rel, name), skip, out);
  } else {
    out.push(`${rel}\t${stat.size}\t${Math.trunc(stat.mtimeMs)}`);
  }
}

export function fingerprint(root, part) {
  const files = [];
  for (const input of part.inputs) listFiles(root, input, part.skip, files);
  return createHash("sha256").update(files.join("\n")).digest("hex");
}

export function isCurrent(root, part) {
  const stamp = path.join(root, part.stamp);
  if (!existsSync(path.join(root, part.output)) || !existsSync(stamp)) return false;
  return readFileSync(stamp, "utf8").trim() === fingerprint(root, part);
}

export function markBuilt(root, part, print = fingerprint(root, part)) {
  writeFileSync(path.join(root, part.stamp), `${print}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  for (const [name, part] of Object.entries(PARTS)) {
    if (isCurrent(root, part)) {
      console.log(`keyportal: ${name} build is current, not rebuilding`);
      continue;
    }
    // Taken before building, so that a file edited during the build still counts as changed next time.
    const print = fingerprint(root, part);
    console.log(`keyportal: building ${name} (npm run ${part.script})`);
    const result = spawnSync("npm", ["run", "-s", part.script], { cwd: root, stdio: "inherit" });
    if (result.status !== 0) process.exit(result.status ?? 1);
    markBuilt(root, part, print);
  }
}
