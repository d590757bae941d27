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

/** Edit distance between two short strings (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** The known name closest to `typed` (a typo or an unambiguous prefix), if any is close. */
export function didYouMean(typed: string, known: readonly string[]): string | undefined {
  const prefixed = known.filter((k) => typed.length >= 3 && k.startsWith(typed));
  if (prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(typed, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(1, Math.min(3, Math.floor(typed.length / 3))) ? best : undefined;
}

/** parseArgs' error code, when it has one. */
function parseErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Parses `args` strictly against `options`, turning parse failures into one-line UsageErrors: an
 * unknown flag gets a did-you-mean, and a one-value flag given twice is refused (only flags marked
 * `multiple` may repeat).
 */
export function parseFlags(command: string, args: string[], options: FlagSpec): ParsedFlags {
  const spec: FlagSpec = { help: { type: "boolean", short: "h" }, ...options };
  const see = `(see 'pg ${command} --help')`;
  let parsed;
  try {
    parsed = parseArgs({ args, options: spec, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (parseErrorCode(err) === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      const flag = /'([^']+)'/.exec(msg)?.[1] ?? msg;
      const names = Object.keys(spec).map((k) => `--${k}`);
      const guess = flag.startsWith("--") ? didYouMean(flag.split("=")[0], names) : undefined;
      const hint = guess === undefined ? "" : `; did you mean ${guess}?`;
      throw new UsageError(`${command}: unknown flag ${flag}${hint} ${see}`);
    }
    const oneLine = msg.replace(/\s*\n\s*/g, " ").replace(/ To specify a positional.*$/, "");
    throw new UsageError(`${command}: ${oneLine} ${see}`);
  }
  const seen = new Set<string>();
  for (const t of parsed.tokens ?? []) {
    if (t.kind !== "option") continue;
    const opt = spec[t.name];
    if (opt?.type === "string" && !opt.multiple && seen.has(t.name)) {
      throw new UsageError(
        `${command}: --${t.name} given more than once; it takes one value ${see}`,
      );
    }
    seen.add(t.name);
  }
  return { values: parsed.values as FlagValues, positionals: parsed.positionals };
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

/** Reads a repeatable string flag: every value given, in order ([] when absent). */
export function stringsFlag(values: FlagValues, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is string => typeof x === "string");
}

/** Reads a flag whose value must be one of `choices` (own keys only), or `fallback` when absent. */
export function choiceFlag<T extends string>(
  values: FlagValues,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const s = stringFlag(values, name);
  if (s === undefined) return fallback;
  if ((choices as readonly string[]).includes(s)) return s as T;
  throw new UsageError(`--${name} expects ${choices.join(", ")}, got '${s}'`);
}
