import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../lib/errors.ts";

/** A subcommand: its name, one-line summary, full help text and entry point. */
export interface Command {
  /** Name typed on the command line, e.g. `caption`. */
  readonly name: string;
  /** One line for the top-level help. */
  readonly summary: string;
  /** Full help text printed by `--help`. */
  readonly help: string;
  /** Runs the command with the arguments after its name; resolves to the exit code. */
  run(args: string[]): Promise<number>;
}

/** Options accepted by `parseFlags`, in node:util parseArgs form. */
export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** Parsed flag values: strings, booleans or their repeated lists. */
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Result of `parseFlags`: flag values and the positional arguments. */
export interface ParsedFlags {
  /** Flag values by long name. */
  values: FlagValues;
  /** Positional arguments in order. */
  positionals: string[];
}

/** Parses `args` strictly against `options`, turning parse failures into a UsageError. */
export function parseFlags(command: string, args: string[], options: FlagSpec): ParsedFlags {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { help: { type: "boolean", short: "h" }, ...options },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as FlagValues, positionals };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const oneLine = msg.replace(/\s*\n\s*/g, " ");
    throw new UsageError(`${command}: ${oneLine} (see '${command} --help')`);
  }
}

/** Reads a string flag, or undefined when absent. */
export function stringFlag(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new UsageError(`--${name} takes a value`);
  return v;
}

/** Reads an integer flag within [min, max], or `fallback` when absent. */
export function intFlag(
  values: FlagValues,
  name: string,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const s = stringFlag(values, name);
  if (s === undefined) return fallback;
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} expects a whole number from ${min} to ${max}, got '${s}'`);
  }
  return n;
}
