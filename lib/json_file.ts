/**
 * Reading a small JSON file (configs, adapter settings): an unreadable file or malformed JSON is
 * one InputError naming the file.
 * @module
 */

import { describeFsError, InputError } from "./errors.ts";

/** Parses `text` read from `path`; malformed JSON is an InputError naming the file. */
function parse(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
    throw new InputError(`${path}: not valid JSON (${why})`);
  }
}

/** Reads and parses the JSON file at `path`. */
export function readJsonFileSync(path: string): unknown {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    throw describeFsError(err, path, "reading");
  }
  return parse(text, path);
}

/** Reads and parses the JSON file at `path`. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw describeFsError(err, path, "reading");
  }
  return parse(text, path);
}
