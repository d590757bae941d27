/**
 * Output paths: checked for writability before any model loads, so a bad path never costs a run;
 * and `--output-dir`, one result file per image, written atomically and skipped when present so a
 * killed run resumes where it stopped.
 * @module
 */

import { basename, dirname, join } from "node:path";
import { ensureDir, writeFileAtomic } from "../lib/atomic.ts";
import { UsageError } from "../lib/errors.ts";
import type { RecordJson } from "./checks.ts";

function why(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such folder";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotADirectory) return "not a folder";
  if (err instanceof UsageError) return err.message;
  return err instanceof Error ? err.message.split("\n")[0] : String(err);
}

/** Creates and removes a file in `dir`, proving that outputs can be written there. */
function probe(dir: string): void {
  const f = Deno.makeTempFileSync({ dir, prefix: ".pg-probe-" });
  Deno.removeSync(f);
}

function isFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** Refuses (exit 2) a `--flag FILE` output whose folder does not exist or cannot be written. */
export function checkOutputFile(flag: string, path: string): void {
  if (isFolder(path) || path.endsWith("/")) {
    throw new UsageError(`--${flag} ${path}: is a folder; give a file name`);
  }
  try {
    probe(dirname(path));
  } catch (err) {
    throw new UsageError(`--${flag} ${path}: cannot write in ${dirname(path)} (${why(err)})`);
  }
}

/** Creates `--flag DIR` (and parents) and refuses it (exit 2) unless files can be written in it. */
export async function prepareOutputDir(flag: string, dir: string): Promise<void> {
  try {
    await ensureDir(dir);
    probe(dir);
  } catch (err) {
    throw new UsageError(`--${flag} ${dir}: cannot write there (${why(err)})`);
  }
}

/** Whether `--overlay PATH` names a folder: ends in `/`, already is one, or several images. */
export function overlayIsFolder(path: string, images: number): boolean {
  return path.endsWith("/") || isFolder(path) || images > 1;
}

/** A short stable hash of `text` (FNV-1a, 32 bits, hex). */
function hash8(text: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/**
 * A file name per image, unique over `images`: the image's base name, plus a hash of its path
 * when several images share that base name (stable across runs and shards of the same list).
 */
export function uniqueNames(images: readonly string[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const p of images) count.set(basename(p), (count.get(basename(p)) ?? 0) + 1);
  const names = new Map<string, string>();
  for (const p of images) {
    const b = basename(p) || "image";
    names.set(p, count.get(basename(p))! > 1 ? `${b}-${hash8(p)}` : b);
  }
  return names;
}

/** `--output-dir`: one `<image-name>.json` per image. */
export class ResultStore {
  /** A store in `dir`, naming files after `names` (see `uniqueNames`). */
  constructor(readonly dir: string, private readonly names: ReadonlyMap<string, string>) {}

  /**
   * Removes temporary result files (`.NAME.json.partial-*`) that a killed run left, once they are
   * older than `minAgeMs`: a result is written in milliseconds, so an older one belongs to no live
   * run (other shards may be writing into the same folder). Returns how many were removed.
   */
  sweep(minAgeMs = 10 * 60_000): number {
    let removed = 0;
    for (const e of Deno.readDirSync(this.dir)) {
      if (!e.isFile || !/^\..+\.json\.partial-/.test(e.name)) continue;
      const path = join(this.dir, e.name);
      try {
        const age = Date.now() - (Deno.statSync(path).mtime?.getTime() ?? Date.now());
        if (age >= minAgeMs) {
          Deno.removeSync(path);
          removed++;
        }
      } catch {
        // Gone already (renamed by its writer): nothing to do.
      }
    }
    return removed;
  }

  /** The result file of `image`. */
  path(image: string): string {
    return join(this.dir, `${this.names.get(image) ?? basename(image)}.json`);
  }

  /** The stored record of `image`, or undefined when absent or unreadable (then it is run again). */
  read(image: string): RecordJson | undefined {
    let text: string;
    try {
      text = Deno.readTextFileSync(this.path(image));
    } catch {
      return undefined;
    }
    try {
      const r = JSON.parse(text);
      if (r !== null && typeof r === "object" && !Array.isArray(r) && r.image === image) return r;
    } catch {
      // A damaged file is run again and replaced.
    }
    return undefined;
  }

  /** Writes `record` as `image`'s result, atomically. */
  async write(image: string, record: RecordJson): Promise<void> {
    await writeFileAtomic(this.path(image), JSON.stringify(record) + "\n");
  }
}
