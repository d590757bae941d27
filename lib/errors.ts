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

/** Reasons for the file-system error codes `describeFsError` words (Deno and node:fs set `code`). */
const FS_REASONS: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "is a directory",
  ENOTDIR: "a parent is not a directory",
  EEXIST: "already exists",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
};

/** A file-system operation that failed on `path` (exit 3); the fields let callers re-place it. */
export class FsError extends InputError {
  /** Creates `<path>: <reason>[ while <operation>]`. */
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly code: string | undefined,
    readonly operation?: string,
  ) {
    super(`${path}: ${reason}${operation ? ` while ${operation}` : ""}`);
    this.name = "FsError";
  }

  /** The same failure reported on another path (e.g. a temporary file's final name). */
  at(path: string): FsError {
    return new FsError(path, this.reason, this.code, this.operation);
  }
}

/** The reason and code of a Deno or node:fs error, or undefined when it is not one we word. */
function fsReason(err: unknown): { reason: string; code: string | undefined } | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && Object.hasOwn(FS_REASONS, code)) {
    return { reason: FS_REASONS[code], code };
  }
  const byClass: [new (...a: never[]) => Error, string][] = [
    [Deno.errors.NotFound, "ENOENT"],
    [Deno.errors.PermissionDenied, "EACCES"],
    [Deno.errors.IsADirectory, "EISDIR"],
    [Deno.errors.NotADirectory, "ENOTDIR"],
    [Deno.errors.AlreadyExists, "EEXIST"],
  ];
  for (const [cls, c] of byClass) if (err instanceof cls) return { reason: FS_REASONS[c], code: c };
  return undefined;
}

/**
 * Turns file-system errors (not found, permission denied, already exists, no space left, read-only
 * file system, ...) into one-line FsErrors naming `path` and, when given, the `operation`
 * ("writing", "creating", ...); passes other errors, PgErrors included, through.
 */
export function describeFsError(err: unknown, path: string, operation?: string): unknown {
  if (err instanceof PgError) return err;
  const known = fsReason(err);
  return known ? new FsError(path, known.reason, known.code, operation) : err;
}
