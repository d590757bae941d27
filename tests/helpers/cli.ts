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
  /** Extra environment variables; PALIGEMMA_MODEL is cleared unless set here. */
  readonly env?: Record<string, string>;
}

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
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", ...PERMISSIONS, "main.ts", ...args],
    cwd: new URL("../..", import.meta.url),
    env: { PALIGEMMA_MODEL: "", ...opts.env },
    stdout: "piped",
    stderr: "piped",
  });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
