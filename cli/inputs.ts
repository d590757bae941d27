/**
 * The list of images a command runs on: paths given as arguments, `-` (newline-separated paths on
 * stdin), `--files-from FILE` and folders (their images; `-r` walks subfolders), then `--shard K/N`.
 * @module
 */

import { extname, join } from "node:path";
import { InputError, UsageError } from "../lib/errors.ts";

/** File extensions taken from folders (case-insensitive); files named explicitly may be anything. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set([
  ".png",
  ".jpg",
  ".jpeg",
  ".gif",
  ".webp",
  ".tif",
  ".tiff",
  ".avif",
]);

/** Where the image paths come from. */
export interface InputSources {
  /** Positional arguments: paths, folders, or `-` for stdin. */
  readonly args: readonly string[];
  /** `--files-from` lists (one path per line; `-` is stdin). */
  readonly filesFrom: readonly string[];
  /** Walk folders recursively. */
  readonly recursive: boolean;
}

/** One shard of a split input list: `index` from 1 to `count`. */
export interface Shard {
  /** 1-based shard number. */
  readonly index: number;
  /** Number of shards. */
  readonly count: number;
}

/** Reads all of stdin as text. */
async function readStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

/** Non-empty lines of a path list (CRLF and trailing spaces tolerated, `#` lines kept as paths). */
function listLines(text: string): string[] {
  return text.split(/\r?\n/).filter((l) => l !== "");
}

/** Images in `dir`, sorted by name; subfolders too when `recursive`. */
function folderImages(dir: string, recursive: boolean): string[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (err) {
    throw new InputError(`${dir}: cannot list the folder (${(err as Error).message})`);
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory) {
      if (recursive) out.push(...folderImages(p, true));
    } else if (IMAGE_EXTENSIONS.has(extname(e.name).toLowerCase())) {
      out.push(p);
    }
  }
  return out;
}

function isFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Expands the sources into image paths, in the order given (folders sorted by name). Stdin is
 * read at most once, whether it is named by `-` or by `--files-from -`. Missing files stay in the
 * list: they become per-image errors when run.
 */
export async function collectImages(src: InputSources): Promise<string[]> {
  const stdinUses = src.args.filter((a) => a === "-").length +
    src.filesFrom.filter((f) => f === "-").length;
  if (stdinUses > 1) throw new UsageError("stdin ('-') can be read only once");
  const out: string[] = [];
  const addPath = (p: string) => {
    if (isFolder(p)) out.push(...folderImages(p, src.recursive));
    else out.push(p);
  };
  for (const a of src.args) {
    if (a === "-") listLines(await readStdin()).forEach(addPath);
    else addPath(a);
  }
  for (const f of src.filesFrom) {
    let text: string;
    if (f === "-") text = await readStdin();
    else {
      try {
        text = await Deno.readTextFile(f);
      } catch (err) {
        throw new InputError(`--files-from ${f}: cannot read it (${(err as Error).message})`);
      }
    }
    listLines(text).forEach(addPath);
  }
  return out;
}

/** Parses `--shard K/N` (1 <= K <= N). */
export function parseShard(text: string | undefined): Shard | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count) {
    throw new UsageError(`--shard expects K/N with 1 <= K <= N (e.g. 2/8), got '${text}'`);
  }
  return { index, count };
}

/**
 * The items of shard K of N: positions i with i mod N = K - 1. Deterministic over the same list,
 * so N runs with K = 1..N cover it exactly once.
 */
export function takeShard<T>(items: readonly T[], shard: Shard | undefined): T[] {
  if (shard === undefined) return [...items];
  return items.filter((_, i) => i % shard.count === shard.index - 1);
}

/** Whether an argument meant as text is more likely an image: `-`, a known extension, or a file. */
export function looksLikeImage(arg: string): boolean {
  if (arg === "-" || IMAGE_EXTENSIONS.has(extname(arg).toLowerCase())) return true;
  try {
    return Deno.statSync(arg).isFile || Deno.statSync(arg).isDirectory;
  } catch {
    return false;
  }
}
