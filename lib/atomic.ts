/**
 * Atomic file output: write to a temporary name in the destination folder, then rename, so a
 * failure never leaves half a file under the final name.
 * @module
 */

import { basename, dirname, join } from "node:path";
import { describeFsError } from "./errors.ts";

/** Writes `data` to `path` through a temporary file in the same folder. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.partial-${crypto.randomUUID().slice(0, 8)}`);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw describeFsError(err, path, "writing");
  }
}

/** Creates `dir` (and parents) or throws an InputError naming it. */
export async function ensureDir(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (err) {
    throw describeFsError(err, dir, "creating the folder");
  }
}
