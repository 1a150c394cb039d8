/**
 * Builds the GraphiQL page (web/) into dist/web, which the server serves:
 * index.html for `GET /graphql` with `Accept: text/html`, assets under /graphiql/.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const webDir = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: webDir,
  // Assets are served at /graphiql/*, while the page itself is served at /graphql.
  base: "/graphiql/",
  // Plain JSX transform; @vitejs/plugin-react would only add Fast Refresh, which a static build has no use for.
  oxc: { jsx: { runtime: "automatic" } },
  build: {
    outDir: path.resolve(webDir, "..", "dist", "web"),
    emptyOutDir: true,
    // Monaco and GraphiQL are large by nature; the page is loaded once per session.
    chunkSizeWarningLimit: 8192,
    rolldownOptions: {
      onwarn(warning, warn) {
        // "use client" (server components) and "use no memo" (React Compiler) mean nothing to this
        // client-only bundle; rolldown warns once per module that has one, hundreds of lines of noise.
        if (warning.code === "MODULE_LEVEL_DIRECTIVE" && /"use (client|no memo)"/.test(warning.message)) return;
        warn(warning);
      },
    },
  },
});
