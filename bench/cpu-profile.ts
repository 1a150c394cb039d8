/**
 * Where a server's CPU time went: reads the V8 CPU profiles (.cpuprofile)
 * in a directory (BENCH_PEERS_PROFILE_DIR of bench/peers.ts, or any
 * `node --cpu-prof` output) and prints self time by area (KeyPortal's own
 * modules by folder, each dependency by package, Node's internals, garbage
 * collection, idle) and the heaviest functions.
 *
 *   node dist/bench/cpu-profile.js <dir> [top]
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The area a frame's time is charged to. */
export function areaOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName === "(idle)") return "(idle)";
    if (functionName === "(garbage collector)") return "(garbage collector)";
    if (functionName === "(program)") return "(program: native, outside JS)";
    return `(native) ${functionName}`;
  }
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  const modules = url.lastIndexOf("/node_modules/");
  if (modules >= 0) {
    const rest = url.slice(modules + "/node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const src = url.indexOf("/dist/src/");
  if (src >= 0) {
    const parts = url.slice(src + "/dist/src/".length).split("/");
    return `keyportal ${parts.length > 1 ? parts[0] + "/" : parts[0]}`;
  }
  return url;
}

function main(): void {
  const dir = process.argv[2];
  const top = Number(process.argv[3] ?? "25");
  if (!dir) {
    console.error("usage: node dist/bench/cpu-profile.js <dir with .cpuprofile files> [top]");
    process.exit(64);
  }
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"))) {
    const profile = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as Profile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    profile.samples.forEach((id, i) => {
      const us = profile.timeDeltas[i] ?? 0;
      const frame = nodes.get(id)?.callFrame;
      if (!frame) return;
      total += us;
      const area = areaOf(frame.url, frame.functionName);
      byArea.set(area, (byArea.get(area) ?? 0) + us);
      const fn = `${frame.functionName || "(anonymous)"} ${frame.url ? `${path.basename(frame.url)}:${frame.lineNumber + 1}` : ""}`.trim();
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    });
  }
  const busy = total - (byArea.get("(idle)") ?? 0);
  const print = (title: string, map: Map<string, number>) => {
    console.log(`\n| ${title} | self ms | % of busy |\n|---|---|---|`);
    for (const [name, us] of [...map.entries()].filter(([n]) => n !== "(idle)" && !n.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`| ${name} | ${(us / 1000).toFixed(0)} | ${((100 * us) / busy).toFixed(1)}% |`);
    }
  };
  console.log(`profiled ${(total / 1e6).toFixed(1)} s, busy ${(busy / 1e6).toFixed(1)} s (${((100 * busy) / total).toFixed(0)}%)`);
  print("area", byArea);
  print("function", byFunction);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
