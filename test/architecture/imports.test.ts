import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
// A plain ES module, also run as `node scripts/import-graph.mjs`.
import { figures, importGraph, partGraph, partOf, readRules, violations } from "../../scripts/import-graph.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
type Graph = Map<string, string[]>;
const graph = importGraph(ROOT) as Graph;
const rules = readRules(readFileSync(path.join(ROOT, "docs", "architecture.md"), "utf8")) as Map<string, { floor: number; also: Set<string> }>;

describe("the imports of src/ keep to docs/architecture.md", () => {
  it("reads a rule for every part, and the graph sees every module", () => {
    expect(graph.size).toBeGreaterThan(100);
    const parts = new Set([...graph.keys()].map((m) => partOf(m) as string));
    for (const part of parts) expect(rules.has(part), `docs/architecture.md has no row for ${part}`).toBe(true);
    expect(graph.get("kernel/unit-of-work.ts")).toContain("kernel/ports.ts");
  });

  it("breaks no rule", () => {
    expect(violations(graph, rules)).toEqual([]);
  });

  it("finds an import the rules forbid: a feature importing the HTTP server, the kernel importing a feature", () => {
    const broken = new Map(graph);
    broken.set("certificates/crl.routes.ts", [...(graph.get("certificates/crl.routes.ts") ?? []), "http/server.ts"]);
    broken.set("kernel/unit-of-work.ts", [...(graph.get("kernel/unit-of-work.ts") ?? []), "notifications/outbox.ts"]);
    broken.set("newpart/thing.ts", []);
    expect(violations(broken, rules)).toEqual([
      "certificates/crl.routes.ts imports http/server.ts: certificates may not import http",
      "kernel/unit-of-work.ts imports notifications/outbox.ts: kernel may not import notifications",
      'newpart/thing.ts: part "newpart" is not in the rules of docs/architecture.md',
    ]);
  });

  it("keeps the kernel and pki/ free of cycles with the rest", () => {
    const { cycles } = figures(partGraph(graph)) as { cycles: string[][] };
    expect(cycles.length).toBeGreaterThan(0); // the features' own cycle, written down in the document
    expect(cycles.flat()).not.toContain("kernel");
    expect(cycles.flat()).not.toContain("pki");
  });
});
