/** Process exit codes used by every subcommand. */
export const ExitCode = {
  ok: 0,
  checkFailed: 1,
  usage: 2,
  badInput: 3,
} as const;

/** One of the documented process exit codes. */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** An error meant for the user: one clear line, a known exit code, never a stack trace. */
export class PgError extends Error {
  /** Creates an error that the CLI prints as one line and exits with `exitCode`. */
  constructor(message: string, readonly exitCode: ExitCode) {
    super(message);
    this.name = "PgError";
  }
}

/** A bad flag, a missing argument or an unknown subcommand (exit 2). */
export class UsageError extends PgError {
  /** Creates a usage error (exit 2). */
  constructor(message: string) {
    super(message, ExitCode.usage);
    this.name = "UsageError";
  }
}

/**
 * A value the caller handed the library that it cannot use (an unknown name, an empty prompt
 * part): the caller's mistake, not a bad file, so exit 2 like a usage error. Its message names no
 * command-line flag; the CLI words it with the flag the value came from (cli/wording.ts).
 */
export class InvalidValue extends PgError {
  /** Creates an invalid-value error (exit 2). */
  constructor(message: string) {
    super(message, ExitCode.usage);
    this.name = "InvalidValue";
  }
}

/** A file, tensor or image that is missing, truncated or not what was expected (exit 3). */
export class InputError extends PgError {
  /** Creates a bad-input error (exit 3). */
  constructor(message: string) {
    super(message, ExitCode.badInput);
    this.name = "InputError";
  }
}

/** An `--expect`-style check that did not hold (exit 1). */
export class CheckFailed extends PgError {
  /** Creates a failed-check error (exit 1). */
  constructor(message: string) {
    super(message, ExitCode.checkFailed);
    this.name = "CheckFailed";
  }
}

/** Turns file-system errors into InputErrors naming the path; passes others through. */
export function describeFsError(err: unknown, path: string): unknown {
  if (err instanceof Deno.errors.NotFound) {
    return new InputError(`${path}: no such file or directory`);
  }
  if (err instanceof Deno.errors.PermissionDenied) {
    return new InputError(`${path}: permission denied`);
  }
  if (err instanceof Deno.errors.IsADirectory) return new InputError(`${path}: is a directory`);
  return err;
}
