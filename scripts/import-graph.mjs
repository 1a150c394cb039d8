#!/usr/bin/env node
// The import graph of src/ and the rules of docs/architecture.md over it.
//   node scripts/import-graph.mjs [root]   prints the figures (floors, upward imports) and any rule broken
// Used by test/architecture/imports.test.ts, which fails when a module imports what the document forbids.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const SPECIFIER = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*["'](\.{1,2}\/[^"']+)["']|import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)|^\s*import\s*["'](\.{1,2}\/[^"']+)["']/gm;

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) walk(file, out);
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(file);
  }
  return out;
}

/** Every module of root/src (paths relative to src/, e.g. "csrs/csr.service.ts") and the modules it imports (type imports too). */
export function importGraph(root) {
  const src = path.join(root, "src");
  const graph = new Map();
  for (const file of walk(src, [])) {
    const from = path.relative(src, file).split(path.sep).join("/");
    const text = readFileSync(file, "utf8");
    const targets = new Set();
    for (const m of text.matchAll(SPECIFIER)) {
      const spec = m[1] ?? m[2] ?? m[3];
      const resolved = path.resolve(path.dirname(file), spec.replace(/\.js$/, ".ts"));
      const target = existsSync(resolved) ? resolved : existsSync(path.join(resolved, "index.ts")) ? path.join(resolved, "index.ts") : null;
      if (target) targets.add(path.relative(src, target).split(path.sep).join("/"));
    }
    graph.set(from, [...targets].sort());
  }
  return graph;
}

/** The part a module belongs to: its top-level directory, or the file's name for the top-level files (app.ts -> "app"). */
export function partOf(module) {
  const slash = module.indexOf("/");
  return slash === -1 ? module.replace(/\.ts$/, "") : module.slice(0, slash);
}

/** Strongly connected components (Tarjan), as arrays of nodes. */
function components(graph) {
  let index = 0;
  const stack = [];
  const on = new Set();
  const idx = new Map();
  const low = new Map();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        c.push(w);
      } while (w !== v);
      out.push(c);
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/**
 * The figures of a graph: floors (the longest chain of imports in its
 * condensation, counted in components: a module importing nothing is floor 1),
 * the cycles (components of more than one node) and the upward imports
 * (imports from a node to one on the same or a higher floor: only an import
 * inside a cycle can do that, it is what keeps the cycle).
 */
export function figures(graph) {
  const comps = components(graph);
  const compOf = new Map();
  comps.forEach((c, i) => c.forEach((v) => compOf.set(v, i)));
  // Tarjan emits components in reverse topological order: every component's imports come before it.
  const floor = new Array(comps.length).fill(1);
  comps.forEach((c, i) => {
    for (const v of c) for (const w of graph.get(v) ?? []) if (compOf.get(w) !== i) floor[i] = Math.max(floor[i], floor[compOf.get(w)] + 1);
  });
  let upward = 0;
  const upwardEdges = [];
  for (const [v, ws] of graph) {
    for (const w of ws) {
      if (compOf.get(v) === compOf.get(w)) {
        upward++;
        upwardEdges.push(`${v} -> ${w}`);
      }
    }
  }
  return { nodes: graph.size, floors: Math.max(0, ...floor), cycles: comps.filter((c) => c.length > 1).map((c) => c.sort()), upward, upwardEdges };
}

/** The graph of parts: part -> parts it imports (not itself). */
export function partGraph(graph) {
  const parts = new Map();
  for (const [v, ws] of graph) {
    const p = partOf(v);
    if (!parts.has(p)) parts.set(p, new Set());
    for (const w of ws) if (partOf(w) !== p) parts.get(p).add(partOf(w));
  }
  return new Map([...parts].map(([p, s]) => [p, [...s].sort()]));
}

/**
 * The rules: the table in docs/architecture.md between the markers
 * <!-- import-rules --> and <!-- /import-rules -->, one row per part:
 * | part | floor | also may import |. A part may import any part on a lower
 * floor; on its own floor or above, only what its row lists (parts, or single
 * modules such as http/routes.ts), "-" for nothing.
 */
export function readRules(markdown) {
  const start = markdown.indexOf("<!-- import-rules -->");
  const end = markdown.indexOf("<!-- /import-rules -->");
  if (start === -1 || end === -1) throw new Error("docs/architecture.md has no <!-- import-rules --> table");
  const rules = new Map();
  for (const line of markdown.slice(start, end).split("\n")) {
    const cells = line.split("|").map((c) => c.trim().replace(/`/g, ""));
    if (cells.length < 5 || !/^\d+$/.test(cells[2])) continue;
    const also = cells[3] === "-" ? [] : cells[3].split(",").map((x) => x.trim()).filter(Boolean);
    for (const part of cells[1].split(",").map((x) => x.trim())) rules.set(part, { floor: Number(cells[2]), also: new Set(also) });
  }
  return rules;
}

/** Whether the rules let module v import module w. */
function allowed(rules, v, w) {
  const from = partOf(v);
  const to = partOf(w);
  if (from === to) return true;
  const a = rules.get(from);
  const b = rules.get(to);
  if (!a || !b) return false;
  return b.floor < a.floor || a.also.has(to) || a.also.has(w);
}

/** Every import the rules forbid (an "upward" import: to a higher floor, or sideways without leave), and every part they do not name. */
export function violations(graph, rules) {
  const out = [];
  for (const [v, ws] of graph) {
    if (!rules.has(partOf(v))) {
      out.push(`${v}: part "${partOf(v)}" is not in the rules of docs/architecture.md`);
      continue;
    }
    for (const w of ws) if (!allowed(rules, v, w)) out.push(`${v} imports ${w}: ${partOf(v)} may not import ${partOf(w)}`);
  }
  return out;
}

/** The tree before src/kernel/ existed, seen with today's parts (for the before/after figures). */
export const BEFORE_KERNEL = new Map([
  ["clock.ts", "kernel/clock.ts"],
  ["domain.ts", "kernel/domain.ts"],
  ["errors.ts", "kernel/errors.ts"],
  ["events.ts", "kernel/events.ts"],
  ["audit/mutation.ts", "kernel/unit-of-work.ts"],
  ["db/outage.ts", "kernel/driver.ts"],
]);

export function renamed(graph, names) {
  const to = (m) => names.get(m) ?? m;
  return new Map([...graph].map(([v, ws]) => [to(v), ws.map(to)]));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const here = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
  const rulesAt = args.indexOf("--rules");
  const doc = rulesAt === -1 ? null : path.resolve(args[rulesAt + 1]);
  const root = path.resolve(args.find((a, i) => !a.startsWith("--") && (rulesAt === -1 || i !== rulesAt + 1)) ?? here);
  const graph = renamed(importGraph(root), BEFORE_KERNEL);
  const modules = figures(graph);
  const parts = figures(partGraph(graph));
  const rulesFile = doc ?? path.join(root, "docs", "architecture.md");
  const broken = existsSync(rulesFile) ? violations(graph, readRules(readFileSync(rulesFile, "utf8"))) : null;
  if (args.includes("--list")) for (const line of broken ?? []) console.log(`forbidden: ${line}`);
  console.log(`modules: ${modules.nodes}; floors: ${modules.floors}; module cycles: ${modules.cycles.length}`);
  console.log(`parts: ${parts.nodes}; parts in a cycle: ${parts.cycles.reduce((n, c) => n + c.length, 0)}${parts.cycles.length ? ` (${parts.cycles.map((c) => c.join(" ")).join("; ")})` : ""}`);
  console.log(broken === null ? "no rules found" : `upward imports (forbidden by ${path.relative(process.cwd(), rulesFile) || rulesFile}): ${broken.length}`);
}
