/**
 * Test helper: runs `deno run main.ts …` in a subprocess, as a user runs `pg`, and collects its
 * exit code and output. Shared by the CLI tests.
 * @module
 */

/** Exit code and output of one CLI run. */
export interface PgRun {
  /** Exit code. */
  readonly code: number;
  /** Everything written to stdout. */
  readonly stdout: string;
  /** Everything written to stderr. */
  readonly stderr: string;
}

/** Options of {@link runPg}. */
export interface RunPgOptions {
  /** Extra environment variables; PALIGEMMA_MODEL and PG_SERVER are cleared unless set here. */
  readonly env?: Record<string, string>;
  /** Text written to the command's stdin (default: none, stdin closed). */
  readonly stdin?: string;
}

/** The `deno` arguments that run `pg <args>`. */
export function pgArgs(args: readonly string[]): string[] {
  return ["run", ...PERMISSIONS, "main.ts", ...args];
}

/** The repository root (where `pg` is run from). */
export const ROOT = new URL("../..", import.meta.url);

/** The permissions `pg` needs (sharp and onnxruntime load native code). */
const PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run",
];

/** Runs `pg <args>` from the repository root and returns its exit code, stdout and stderr. */
export async function runPg(args: readonly string[], opts: RunPgOptions = {}): Promise<PgRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: pgArgs(args),
    cwd: ROOT,
    env: { PALIGEMMA_MODEL: "", PG_SERVER: "", ...opts.env },
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
