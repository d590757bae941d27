/**
 * The model cache's folder and entries: where the cache is, the pg-cache.json each entry holds,
 * listing entries and removing them. An entry is a folder directly inside the cache folder,
 * not hidden and not a symbolic link, holding pg-cache.json; nothing else there is ever removed
 * as an entry. Removal first renames the entry to a hidden name, so an interrupted removal never
 * leaves a half entry that a later run would load.
 * @module
 */

import * as fs from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { describeFsError, InputError, InvalidValue } from "../errors.ts";
import { isPrecision, type Precision } from "../model/precision.ts";
import type { CacheSourceFormat } from "./cache_key.ts";
import { removeStalePartials } from "./output.ts";

/** The file inside each entry that records what it was converted from. */
export const CACHE_META = "pg-cache.json";

/** Contents of pg-cache.json. */
export interface CacheMeta {
  /** Absolute path of the checkpoint converted. */
  readonly source: string;
  /** Its layout. */
  readonly format: CacheSourceFormat;
  /** Precision converted to. */
  readonly dtype: Precision;
  /** tokenizer.model given, if any (absolute). */
  readonly tokenizer?: string;
  /** config.json given, if any (absolute). */
  readonly config?: string;
  /** The toolkit version that converted it. */
  readonly pg_version: string;
  /** When it was converted (ISO 8601). */
  readonly created: string;
}

/** No environment variable says where the cache is (exit 2). */
export class NoCacheFolder extends InvalidValue {
  /** Creates the error. */
  constructor() {
    super("no model cache folder: set PG_CACHE, XDG_CACHE_HOME or HOME");
    this.name = "NoCacheFolder";
  }
}

/**
 * The cache folder (absolute): `$PG_CACHE`, else `$XDG_CACHE_HOME/pg/models`, else
 * `$HOME/.cache/pg/models` (`%USERPROFILE%` where HOME is unset); empty values count as unset.
 */
export function cacheFolder(env: (name: string) => string | undefined): string {
  const get = (name: string) => {
    const v = env(name);
    return v === undefined || v === "" ? undefined : v;
  };
  const own = get("PG_CACHE");
  if (own !== undefined) return resolve(own);
  const xdg = get("XDG_CACHE_HOME");
  if (xdg !== undefined) return resolve(xdg, "pg", "models");
  const home = get("HOME") ?? get("USERPROFILE");
  if (home === undefined) throw new NoCacheFolder();
  return resolve(home, ".cache", "pg", "models");
}

/** pg-cache.json's contents, or undefined when it is missing or malformed. */
export function readCacheMeta(entry: string): CacheMeta | undefined {
  try {
    const j = JSON.parse(fs.readFileSync(join(entry, CACHE_META), "utf8")) as Record<
      string,
      unknown
    >;
    const ok = typeof j.source === "string" && (j.format === "hf" || j.format === "big_vision") &&
      typeof j.dtype === "string" && isPrecision(j.dtype);
    return ok ? j as unknown as CacheMeta : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `path` is a cache entry folder (see the module doc for what counts). */
export function isCacheEntry(path: string): boolean {
  try {
    if (basename(path).startsWith(".")) return false;
    const st = fs.lstatSync(path);
    return st.isDirectory() && fs.statSync(join(path, CACHE_META)).isFile();
  } catch {
    return false;
  }
}

/** One entry as listed. */
export interface CacheEntry {
  /** Folder name inside the cache. */
  readonly name: string;
  /** Absolute folder path. */
  readonly path: string;
  /** Its pg-cache.json, undefined when unreadable. */
  readonly meta?: CacheMeta;
  /** Bytes of all its files. */
  readonly bytes: number;
  /** When a run last loaded it (the folder's modification time, set on each reuse). */
  readonly lastUsed: Date;
}

/** Bytes of the files under `dir`. */
function folderBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += folderBytes(p);
    else if (e.isFile()) total += fs.statSync(p).size;
  }
  return total;
}

/** Names of the entries in `root`, sorted; [] when the folder does not exist. */
function entryNames(root: string): string[] {
  try {
    return fs.readdirSync(root).filter((n) => isCacheEntry(join(root, n))).sort();
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return [];
    throw describeFsError(err, root, "listing");
  }
}

/** Every entry of the cache folder `root`, by name. */
export function listCache(root: string): CacheEntry[] {
  return entryNames(root).map((name) => {
    const path = join(root, name);
    try {
      return {
        name,
        path,
        meta: readCacheMeta(path),
        bytes: folderBytes(path),
        lastUsed: fs.statSync(path).mtime,
      };
    } catch (err) {
      throw describeFsError(err, path, "reading");
    }
  });
}

/** A name given for removal that is no entry of the cache (exit 2). */
export class NotACacheEntry extends InvalidValue {
  /** `entry`: the name as given; `root`: the cache folder. */
  constructor(readonly entry: string, readonly root: string) {
    super(`${entry}: not an entry of the model cache ${root}`);
    this.name = "NotACacheEntry";
  }
}

/** The entry folder `name` (an entry name, or the path of an entry) means, else NotACacheEntry. */
function entryPath(root: string, name: string): string {
  const base = basename(name.replace(/[\\/]+$/, ""));
  const inRoot = base === name || resolve(dirname(name)) === resolve(root);
  const path = join(root, base);
  if (!inRoot || base === "" || base === "." || base === ".." || !isCacheEntry(path)) {
    throw new NotACacheEntry(name, root);
  }
  return path;
}

/** Moves `path` to a hidden name beside it, then removes it. */
async function removeEntry(path: string): Promise<void> {
  const doomed = join(
    dirname(path),
    `.${basename(path)}.removing-${crypto.randomUUID().slice(0, 8)}`,
  );
  try {
    await Deno.rename(path, doomed);
  } catch (err) {
    throw describeFsError(err, path, "removing");
  }
  try {
    await Deno.remove(doomed, { recursive: true });
  } catch (err) {
    throw describeFsError(err, doomed, "removing");
  }
}

/**
 * Removes the entries `names` (entry names, or entry paths inside `root`) and returns their
 * paths. Every name is checked first: one that is no entry removes nothing (NotACacheEntry).
 */
export async function removeCacheEntries(
  root: string,
  names: readonly string[],
): Promise<string[]> {
  const paths = [...new Set(names.map((n) => entryPath(root, n)))];
  for (const p of paths) await removeEntry(p);
  return paths;
}

/** Removes the entry lock file `path` unless a conversion holds it. */
async function removeIdleLock(path: string): Promise<void> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true, write: true });
  } catch {
    return;
  }
  try {
    if (await f.tryLock(true)) await Deno.remove(path);
  } catch {
    /* left for a later run */
  } finally {
    f.close();
  }
}

/**
 * Removes every entry of `root`, the leftovers of interrupted removals, the partial folders of
 * interrupted conversions and idle lock files (not what a running conversion still uses);
 * returns the entries' paths.
 */
export async function clearCache(root: string): Promise<string[]> {
  const paths = entryNames(root).map((n) => join(root, n));
  for (const p of paths) await removeEntry(p);
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return paths;
  }
  for (const n of names) {
    if (/^\..+\.removing-[^.]+$/.test(n)) {
      await Deno.remove(join(root, n), { recursive: true }).catch((err) => {
        throw describeFsError(err, join(root, n), "removing");
      });
    }
    const partial = /^\.(.+)\.partial-[^.]+$/.exec(n);
    if (partial) await removeStalePartials(join(root, partial[1]));
    if (/^\..+\.lock$/.test(n)) await removeIdleLock(join(root, n));
  }
  return paths;
}

/** An entry folder that exists without pg-cache.json (not made by the cache; exit 3). */
export class BrokenCacheEntry extends InputError {
  /** `path`: the folder. */
  constructor(readonly path: string) {
    super(`${path}: in the model cache but no complete entry (no ${CACHE_META}); remove it`);
    this.name = "BrokenCacheEntry";
  }
}
