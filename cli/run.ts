import { type Command, didYouMean } from "./command.ts";
import { ExitCode, UsageError } from "../lib/errors.ts";
import { argsFromFile, rerunIfLong, stopWithParent } from "./reexec.ts";
import { rerunForNet } from "./net_access.ts";
import { EXIT_STDOUT_CLOSED, StdoutClosed, writeOut } from "./stdout.ts";
import { versionLine } from "./version.ts";
import { errorLine } from "./wording.ts";

/**
 * Dispatches `args` to a command, prints user errors as one line on stderr and exits. A long
 * command line is first moved into a file and run by a child (see cli/reexec.ts), as is a command
 * that needs network access to one address (cli/net_access.ts).
 */
export async function runMain(
  args: string[],
  list: readonly Command[],
  usage: string,
): Promise<never> {
  let code: number;
  try {
    const handed = argsFromFile();
    if (handed !== undefined) stopWithParent();
    code = handed === undefined ? (await rerunIfLong(args)) ?? -1 : -1;
    if (code < 0) code = (await rerunForNet(handed ?? args)) ?? -1;
    if (code < 0) code = await dispatch(handed ?? args, list, usage);
  } catch (err) {
    code = report(err);
  }
  Deno.exit(code);
}

/** Runs the command named by `args[0]` and returns the exit code (errors are printed here). */
export async function dispatch(
  args: string[],
  list: readonly Command[],
  usage: string,
): Promise<number> {
  try {
    const [name, ...rest] = args;
    if (name === undefined) {
      // An error path: usage goes to stderr so that stdout stays clean.
      console.error(usage);
      return ExitCode.usage;
    }
    if (name === "--version" || name === "-V" || name === "version") {
      writeOut(`${versionLine()}\n`);
      return ExitCode.ok;
    }
    if (name === "help" && rest.length > 0) return await dispatch([rest[0], "--help"], list, usage);
    if (name === "--help" || name === "-h" || name === "help") {
      writeOut(`${usage}\n`);
      return ExitCode.ok;
    }
    const command = list.find((c) => c.name === name);
    if (!command) {
      const guess = didYouMean(name, list.map((c) => c.name));
      const hint = guess === undefined ? "" : `; did you mean '${guess}'?`;
      throw new UsageError(`unknown command '${name}'${hint} (see 'pg --help')`);
    }
    return await command.run(rest);
  } catch (err) {
    if (err instanceof StdoutClosed) return EXIT_STDOUT_CLOSED;
    return report(err);
  }
}

/** Prints an error as one line and returns its exit code; a stack only with PG_DEBUG=1. */
export function report(err: unknown): number {
  const debug = Deno.env.get("PG_DEBUG") === "1";
  const line = errorLine(err);
  console.error(`paligemma: ${line.message}`);
  if (debug && err instanceof Error && err.stack) console.error(err.stack);
  else if (!line.expected) {
    console.error("paligemma: (unexpected error; set PG_DEBUG=1 for details)");
  }
  return line.exitCode;
}
