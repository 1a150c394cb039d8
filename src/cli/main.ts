#!/usr/bin/env node
/** The `keyportal` executable: see commands.ts for what it does. */
import { main } from "./commands.js";

process.exitCode = await main(process.argv.slice(2), process.env);
