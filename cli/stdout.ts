/**
 * Standard output for results: whole writes, a closed pipe (`pg … | head -1`) turned into one
 * quiet exit, and the escaping that keeps plain output at one line per record.
 * @module
 */

/** Exit code when stdout was closed by its reader (128 + SIGPIPE, as shells report it). */
export const EXIT_STDOUT_CLOSED = 141;

/** Thrown when stdout's reader has gone; `runMain` ends the process quietly with 141. */
export class StdoutClosed extends Error {
  /** Creates the marker error. */
  constructor() {
    super("stdout was closed");
    this.name = "StdoutClosed";
  }
}

const encoder = new TextEncoder();

/** Writes all of `text` to stdout; throws StdoutClosed when the reader has closed the pipe. */
export function writeOut(text: string): void {
  const bytes = encoder.encode(text);
  try {
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
  } catch (err) {
    if (err instanceof Deno.errors.BrokenPipe) throw new StdoutClosed();
    throw err;
  }
}

/** `text` on one line: backslash, newline, carriage return and tab written as `\\`, `\n`, `\r`, `\t`. */
export function oneLine(text: string): string {
  return text.replace(/[\\\n\r\t]/g, (c) => ESCAPES[c]);
}

const ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
