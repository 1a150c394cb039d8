#!/usr/bin/env node
/** The `keyportal` executable: see commands.ts for what it does. */
import { main } from "./commands.js";

// Ctrl-C ends `keyportal watch` cleanly; other commands finish on their own.
const interrupted = new AbortController();
process.once("SIGINT", () => interrupted.abort());
process.once("SIGTERM", () => interrupted.abort());
process.exitCode = await main(process.argv.slice(2), process.env, undefined, undefined, interrupted.signal);
