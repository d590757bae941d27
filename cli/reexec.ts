/**
 * Long command lines: ONNX Runtime reads the process's command line when it creates its first
 * session, with stack use that grows with its length, and aborts the whole process ("thread 'main'
 * has overflowed its stack") past about 15-30 KB at the usual 8 MB stack. So `pg` started with a
 * long argument list runs itself again with a short one, the arguments passed in a private
 * temporary file.
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { UsageError } from "../lib/errors.ts";

/** Environment variable naming the file that holds the arguments of a re-run. */
export const ARGS_FILE_ENV = "PG_ARGS_FILE";

/** Command lines longer than this many bytes are moved into a file. */
export const ARGV_LIMIT_BYTES = 4096;

const PERMISSIONS = ["read", "write", "env", "ffi", "sys", "run", "net"] as const;

/** Bytes the arguments take on the command line (each with its terminating NUL). */
export function argvBytes(args: readonly string[]): number {
  const enc = new TextEncoder();
  return args.reduce((n, a) => n + enc.encode(a).length + 1, 0);
}

/** The arguments handed over by a parent `pg` through ARGS_FILE_ENV (the file is removed). */
export function argsFromFile(): string[] | undefined {
  const path = Deno.env.get(ARGS_FILE_ENV);
  if (path === undefined) return undefined;
  Deno.env.delete(ARGS_FILE_ENV);
  const args = JSON.parse(Deno.readTextFileSync(path));
  Deno.removeSync(path);
  if (!Array.isArray(args) || !args.every((a) => typeof a === "string")) {
    throw new UsageError(`${ARGS_FILE_ENV}: ${path} does not hold a list of arguments`);
  }
  return args;
}

/**
 * In a re-run child: stop as if sent SIGTERM once the parent `pg` is gone (killed with SIGKILL,
 * which it cannot pass on), so that no orphan goes on using the model or holding a socket.
 */
export function stopWithParent(): void {
  const parent = Deno.ppid;
  const timer = setInterval(() => {
    if (Deno.ppid === parent) return;
    clearInterval(timer);
    try {
      Deno.kill(Deno.pid, "SIGTERM");
    } catch {
      Deno.exit(143);
    }
  }, 500);
  Deno.unrefTimer(timer);
}

/** `--allow-*` flags for every permission this process holds in full. */
function grantedFlags(): string[] {
  return PERMISSIONS.filter((name) => Deno.permissions.querySync({ name }).state === "granted")
    .map((name) => `--allow-${name}`);
}

/**
 * Runs this program again with `args` in a temporary file and returns its exit code, or undefined
 * when the command line is short enough to run here.
 */
export async function rerunIfLong(args: readonly string[]): Promise<number | undefined> {
  if (Deno.env.get(ARGS_FILE_ENV) !== undefined) return undefined;
  const bytes = argvBytes(args);
  if (bytes <= ARGV_LIMIT_BYTES) return undefined;
  if (Deno.permissions.querySync({ name: "run" }).state !== "granted") {
    throw new UsageError(
      `${args.length} arguments (${Math.round(bytes / 1024)} KB) are too long a command line ` +
        "for ONNX Runtime; pass the image paths on stdin ('-') or with --files-from, or allow " +
        "pg to re-run itself (--allow-run)",
    );
  }
  return await rerunSelf(args);
}

/**
 * Runs this program again with `args` (in a temporary file, as above) and the permissions this
 * process holds plus `extraFlags` (e.g. `--allow-net=127.0.0.1:8080`); returns the child's exit
 * code. With `forwardSignals`, SIGINT and SIGTERM sent to this process are passed on to the child.
 */
export async function rerunSelf(
  args: readonly string[],
  extraFlags: readonly string[] = [],
  forwardSignals = false,
): Promise<number> {
  const file = await Deno.makeTempFile({ prefix: "pg-args-", suffix: ".json" });
  await Deno.writeTextFile(file, JSON.stringify(args));
  const main = Deno.mainModule;
  const config = main.startsWith("file:") ? join(dirname(fileURLToPath(main)), "deno.json") : "";
  const useConfig = config !== "" && isFile(config);
  const forwards: [Deno.Signal, () => void][] = [];
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...grantedFlags(),
        ...extraFlags,
        ...(useConfig ? ["--config", config] : []),
        main,
      ],
      env: { [ARGS_FILE_ENV]: file },
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    if (forwardSignals) {
      for (const sig of ["SIGINT", "SIGTERM"] as const) {
        const pass = () => {
          try {
            child.kill(sig);
          } catch {
            // already gone
          }
        };
        Deno.addSignalListener(sig, pass);
        forwards.push([sig, pass]);
      }
    }
    const status = await child.status;
    return status.signal !== null ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    for (const [sig, pass] of forwards) Deno.removeSignalListener(sig, pass);
    await Deno.remove(file).catch(() => {});
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const SIGNALS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGKILL: 9,
  SIGPIPE: 13,
  SIGTERM: 15,
};

function signalNumber(sig: Deno.Signal): number {
  return SIGNALS[sig] ?? 1;
}
