import type { Command } from "./command.ts";
import { ExitCode, UsageError } from "../lib/errors.ts";
import { errorLine } from "./wording.ts";

/** Dispatches `args` to a command, prints user errors as one line on stderr and exits. */
export async function runMain(
  args: string[],
  list: readonly Command[],
  usage: string,
): Promise<never> {
  Deno.exit(await dispatch(args, list, usage));
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
    if (name === "--help" || name === "-h" || name === "help") {
      console.log(usage);
      return ExitCode.ok;
    }
    const command = list.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command '${name}' (see 'pg --help')`);
    return await command.run(rest);
  } catch (err) {
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
