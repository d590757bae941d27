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
  if (err instanceof Deno.errors.NotCapable) {
    // Deno's sandbox refuses devices and /proc paths (e.g. /dev/stdin) to anything but --allow-all.
    const path = /"([^"]+)"/.exec(err.message)?.[1] ?? "the file";
    return {
      message: `${path}: pg reads regular files only, not devices or pipes; save the data to a ` +
        "file first (image paths, not image data, can come on stdin with '-')",
      exitCode: ExitCode.badInput,
      expected: true,
    };
  }
  const msg = err instanceof Error ? err.message : String(err);
  return { message: msg.split("\n")[0], exitCode: ExitCode.badInput, expected: false };
}
