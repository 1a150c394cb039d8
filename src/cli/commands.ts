/**
 * keyportal: the officer's and operator's command line. Keys are made and
 * kept on this machine; only the CSR goes to the server. `keyportal help`
 * lists the commands, `keyportal <command> --help` explains one.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CliError, EXIT, KeyPortalClient } from "./client.js";
import { baseUrl, type Command, type CommandContext, GLOBAL_OPTIONS, type OptionSpec, resolveToken, type Values } from "./command.js";
import { COMMAND_GROUPS, COMMANDS } from "./registry.js";

export { EXIT };

/** The package's version, from the package.json above this file (src/cli or dist/src/cli). */
export function version(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "keyportal" && pkg.version) return pkg.version;
    } catch {
      // not here; look one directory up
    }
    dir = path.dirname(dir);
  }
  return "unknown";
}

const EXIT_CODES_HELP = `exit codes:
  0   done
  1   refused by the server (bad input, conflict, precondition; the message says which) or a local file problem
  2   no token, or the server does not accept it (unknown, expired, revoked)
  3   the token may not do this (FORBIDDEN)
  4   no such object, or not visible with this token (NOT_FOUND)
  5   KeyPortal cannot be reached at the URL, or it is not a KeyPortal server
  64  wrong command line (unknown command or option, missing or malformed value)`;

const CONNECTION_HELP = `connection (every command that talks to the server):
  --url <url>          or KEYPORTAL_URL (default http://127.0.0.1:4000)
  --token-file <file>  or KEYPORTAL_TOKEN_FILE; default ~/.config/keyportal/token when it exists; mode 0600
  --token <token>      or KEYPORTAL_TOKEN
  --json               JSON on stdout instead of text (errors: one JSON object on stderr)`;

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  const groups = COMMAND_GROUPS.map((g) => `${g.title}:\n${g.commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n")}`);
  return `usage: keyportal <command> [options]    (keyportal <command> --help for its options and an example)

${groups.join("\n\n")}

${CONNECTION_HELP}

${EXIT_CODES_HELP}

keyportal --version prints the version.`;
}

function optionLine(name: string, spec: OptionSpec): string {
  const flag = `--${name}${spec.value ? ` ${spec.value}` : ""}`;
  return `  ${flag.padEnd(26)}${spec.required ? "(required) " : ""}${spec.description}`;
}

export function commandHelp(command: Command): string {
  const own = Object.entries(command.options).map(([name, spec]) => optionLine(name, spec));
  const globals = Object.entries(GLOBAL_OPTIONS)
    .filter(([name]) => command.remote || name === "json" || name === "help")
    .map(([name, spec]) => optionLine(name, spec));
  return [
    `usage: keyportal ${command.name} [options]`,
    "",
    command.summary,
    ...(command.details ? ["", command.details] : []),
    "",
    "options:",
    ...(own.length ? own : ["  (none)"]),
    "",
    "common options:",
    ...globals,
    "",
    `example${command.examples.length > 1 ? "s" : ""}:`,
    ...command.examples.map((e) => `  ${e}`),
    "",
    "exit codes: 0 done, 1 refused, 2 token, 3 forbidden, 4 not found, 5 unreachable, 64 usage (keyportal help)",
  ].join("\n");
}

/** The command named by the first one or two words of argv ("delegations approve"), and the rest. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | null {
  const two = argv.slice(0, 2).join(" ");
  const byTwo = COMMANDS.find((c) => c.name === two);
  if (byTwo) return { command: byTwo, rest: argv.slice(2) };
  const byOne = COMMANDS.find((c) => c.name === argv[0]);
  return byOne ? { command: byOne, rest: argv.slice(1) } : null;
}

async function run(
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: (line: string) => void,
  err: (line: string) => void,
  signal: AbortSignal,
  flags: { json: boolean },
): Promise<void> {
  if (argv[0] === "--json") argv = argv.slice(1);
  const [first] = argv;
  if (first === "--version" || first === "-V" || first === "version") {
    out(flags.json ? JSON.stringify({ version: version() }) : `keyportal ${version()}`);
    return;
  }
  if (!first || first === "help" || first === "--help" || first === "-h") {
    const topic = argv[1] && findCommand(argv.slice(1));
    out(topic ? commandHelp(topic.command) : usage());
    return;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${first} `)).map((c) => c.name);
    if (group.length) throw new CliError(`"${first}" needs one of: ${group.map((g) => g.split(" ")[1]).join(", ")} (e.g. keyportal ${group[0]})`, EXIT.USAGE);
    throw new CliError(`unknown command "${first.slice(0, 40)}"; keyportal help lists them`, EXIT.USAGE);
  }
  const { command, rest } = found;
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  let values: Values;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: Object.fromEntries(Object.entries(options).map(([name, spec]) => [name, { type: spec.type }])),
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new CliError(`${(error as Error).message}; keyportal ${command.name} --help lists its options`, EXIT.USAGE);
  }
  if (values.help) {
    out(commandHelp(command));
    return;
  }
  flags.json = values.json === true;
  let token: Promise<string | undefined> | undefined;
  const ctx: CommandContext = {
    values,
    env,
    out,
    info: (line) => err(flags.json ? JSON.stringify({ info: line }) : `keyportal: ${line}`),
    json: flags.json,
    signal,
    token: () => (token ??= resolveToken(values, env)),
    connect: async () => new KeyPortalClient(baseUrl(values, env), await ctx.token()),
    connectAnonymously: async () => new KeyPortalClient(baseUrl(values, env), undefined),
  };
  const result = await command.run(ctx);
  if (result) out(flags.json ? JSON.stringify(result.json, null, 2) : result.text);
}

export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  err: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
  signal: AbortSignal = new AbortController().signal,
): Promise<number> {
  // --json before the command word counts too, so that errors in parsing come out as JSON.
  const flags = { json: argv.includes("--json") };
  try {
    await run(argv, env, out, err, signal, flags);
    return EXIT.OK;
  } catch (error) {
    const e =
      error instanceof CliError ? error : new CliError(`unexpected error: ${error instanceof Error ? error.message : String(error)}`, EXIT.FAILED);
    if (flags.json) err(JSON.stringify({ error: { message: e.message, exitCode: e.exitCode, code: e.code ?? null, reason: e.reason ?? null } }));
    else err(`keyportal: ${e.message}`);
    return e.exitCode;
  }
}
