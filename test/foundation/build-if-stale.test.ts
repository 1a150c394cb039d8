import { mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain ESM script without type declarations
import { isCurrent, markBuilt, PARTS } from "../../scripts/build-if-stale.mjs";
import { makeTempDir } from "../pki/helpers.js";

type Part = { inputs: string[]; output: string; stamp: string };

describe("npm start's build step", () => {
  it("should skip a build whose inputs are unchanged, and rebuild after an edit, an added or a removed file", () => {
    const tmp = makeTempDir("kp-build-");
    const root = tmp.path;
    try {
      const server = (PARTS as Record<string, Part>).server!;
      const write = (rel: string, text: string) => {
        mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
        writeFileSync(path.join(root, rel), text);
      };
      write("src/main.ts", "export {};\n");
      write("tsconfig.json", "{}\n");
      write("package-lock.json", "{}\n");
      expect(isCurrent(root, server)).toBe(false); // never built
      write(server.output, "// built\n");
      markBuilt(root, server);
      expect(isCurrent(root, server)).toBe(true);

      const later = new Date(Date.now() + 5_000);
      utimesSync(path.join(root, "src/main.ts"), later, later);
      expect(isCurrent(root, server)).toBe(false); // edited
      markBuilt(root, server);
      write("src/new.ts", "export const x = 1;\n");
      expect(isCurrent(root, server)).toBe(false); // added
      markBuilt(root, server);
      rmSync(path.join(root, "src/new.ts"));
      expect(isCurrent(root, server)).toBe(false); // removed
      markBuilt(root, server);
      expect(isCurrent(root, server)).toBe(true);
      rmSync(path.join(root, server.output));
      expect(isCurrent(root, server)).toBe(false); // output gone
    } finally {
      tmp.cleanup();
    }
  });
});
