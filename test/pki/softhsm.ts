/**
 * A private SoftHSM2 token for one test file: its own token directory and
 * config (SOFTHSM2_CONF), so tests never touch a system token.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { softhsm2Library } from "../support/deps.js";

export const TOKEN_LABEL = "kp";
export const TOKEN_PIN = "1234";

export interface TestToken {
  library: string;
  tokenLabel: string;
  pin: string;
}

/**
 * Initializes a fresh token under `dir` and points SOFTHSM2_CONF at it. Must
 * run before the PKCS#11 module is first initialized in this process (SoftHSM
 * reads the variable in C_Initialize); vitest runs each test file in its own process.
 */
export function initToken(dir: string): TestToken {
  const library = softhsm2Library();
  if (!library) throw new Error("softhsm2 library not found");
  const tokenDir = join(dir, "tokens");
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  const conf = join(dir, "softhsm2.conf");
  writeFileSync(conf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = conf;
  execFileSync("softhsm2-util", ["--init-token", "--free", "--label", TOKEN_LABEL, "--pin", TOKEN_PIN, "--so-pin", "5678"], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: "ignore",
    timeout: 30_000,
  });
  return { library, tokenLabel: TOKEN_LABEL, pin: TOKEN_PIN };
}
