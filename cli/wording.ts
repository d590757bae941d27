/**
 * How the CLI words errors: one line per error, in the command line's own terms (flag names), from
 * the typed errors the library throws. Used for fatal errors and for per-image error records.
 * @module
 */

import { ExitCode, PgError } from "../lib/errors.ts";

/** The one-line message and exit code the CLI gives `err`. */
export function errorLine(err: unknown): { message: string; exitCode: number; expected: boolean } {
  if (err instanceof PgError) {
    return { message: err.message, exitCode: err.exitCode, expected: true };
  }
  const msg = err instanceof Error ? err.message : String(err);
  return { message: msg.split("\n")[0], exitCode: ExitCode.badInput, expected: false };
}
