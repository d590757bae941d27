/**
 * Running straight from a checkpoint: the first use of an HF folder or big_vision `.npz` converts
 * it into an entry of the model cache (lib/convert/cache_entries.ts) named by its files
 * (lib/convert/cache_key.ts); later uses load that entry. The conversion goes through
 * `convertToFolder`, which writes a temporary folder beside the entry and renames it into place
 * with pg-cache.json inside, so a killed first run never leaves an entry that looks complete. An
 * advisory lock per entry makes a second concurrent first run wait and then reuse the first's.
 * @module
 */

import * as fs from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import config from "../../deno.json" with { type: "json" };
import type { AssumedField } from "../checkpoint/bigvision.ts";
import { openCheckpoint } from "../checkpoint/open.ts";
import { ensureDir, writeFileAtomic } from "../atomic.ts";
import { InputError } from "../errors.ts";
import type { Precision } from "../model/precision.ts";
import { BrokenCacheEntry, CACHE_META, type CacheMeta, isCacheEntry } from "./cache_entries.ts";
import { cacheEntryName, type CacheSourceFormat, cacheSourceFormat } from "./cache_key.ts";
import { overrideConfig, readConfigJson } from "./config_override.ts";
import { convertToFolder, MissingTokenizerError } from "./to_folder.ts";

/** What to load from the cache. */
export interface CacheRequest {
  /** The cache folder (`cacheFolder`). */
  readonly root: string;
  /** The checkpoint: HF folder (or a safetensors file in one) or big_vision `.npz`. */
  readonly source: string;
  /** Precision to convert to. */
  readonly precision: Precision;
  /** tokenizer.model to write the tokenizer files from (needed for a `.npz`). */
  readonly tokenizerModel?: string;
  /** config.json whose values replace the checkpoint's. */
  readonly configFile?: string;
  /** Receives one line at a time: what is done, then the conversion's progress. */
  readonly log?: (line: string) => void;
  /** Told the text-config fields a `.npz` does not store and that take published values. */
  readonly onAssumed?: (fields: readonly AssumedField[]) => void;
}

/** The entry loaded. */
export interface CachedModel {
  /** The entry folder: a converted model folder. */
  readonly path: string;
  /** Whether this call converted it (false: reused). */
  readonly converted: boolean;
}

/** Marks `entry` as used now (its folder's modification time); failures are ignored. */
function touch(entry: string): void {
  const now = new Date();
  try {
    fs.utimesSync(entry, now, now);
  } catch { /* a read-only cache still loads */ }
}

/**
 * Takes the entry's lock (`.NAME.lock` beside it), waiting while another process holds it;
 * undefined where the file system cannot lock.
 */
async function lockEntry(
  entry: string,
  onWait: () => void,
): Promise<Deno.FsFile | undefined> {
  const lockPath = join(dirname(entry), `.${basename(entry)}.lock`);
  let f: Deno.FsFile;
  try {
    f = await Deno.open(lockPath, { read: true, write: true, create: true });
  } catch {
    return undefined;
  }
  try {
    if (await f.tryLock(true)) return f;
    onWait();
    await f.lock(true);
    return f;
  } catch {
    f.close();
    return undefined;
  }
}

/** The entry `entry` if it is complete (after marking it used); undefined when absent. */
function reuse(entry: string, log: (line: string) => void): CachedModel | undefined {
  if (isCacheEntry(entry)) {
    touch(entry);
    log(`reusing the converted model in ${entry}`);
    return { path: entry, converted: false };
  }
  if (fs.existsSync(entry)) throw new BrokenCacheEntry(entry);
  return undefined;
}

/** Converts `req.source` (of layout `format`) into the entry folder `entry`. */
async function convertInto(
  entry: string,
  format: CacheSourceFormat,
  req: CacheRequest,
): Promise<void> {
  const log = req.log ?? (() => {});
  const ck = await openCheckpoint(req.source);
  try {
    const src = req.configFile === undefined ? ck : {
      ...ck,
      config: overrideConfig(ck.config, await readConfigJson(req.configFile), req.configFile),
    };
    if (req.configFile === undefined && ck.assumed) req.onAssumed?.(ck.assumed);
    const meta: CacheMeta = {
      source: resolve(req.source),
      format,
      dtype: req.precision,
      ...(req.tokenizerModel === undefined ? {} : { tokenizer: resolve(req.tokenizerModel) }),
      ...(req.configFile === undefined ? {} : { config: resolve(req.configFile) }),
      pg_version: config.version,
      created: new Date().toISOString(),
    };
    const started = performance.now();
    const res = await convertToFolder(src, entry, {
      precision: req.precision,
      tokenizerModel: req.tokenizerModel,
      log,
      beforeCommit: (tmp) =>
        writeFileAtomic(join(tmp, CACHE_META), JSON.stringify(meta, null, 2) + "\n"),
    });
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    log(`${res.files.length} files written to ${entry} in ${secs} s`);
  } finally {
    ck.close();
  }
}

/**
 * The cache entry of `req.source` at `req.precision`: reused when present, else converted now
 * (see the module doc). A `.npz` without a tokenizer.model is refused (MissingTokenizerError)
 * before anything is written.
 */
export async function modelFromCache(req: CacheRequest): Promise<CachedModel> {
  const log = req.log ?? (() => {});
  const format = cacheSourceFormat(req.source);
  if (format === undefined) {
    throw new InputError(`${req.source}: not an HF or big_vision checkpoint`);
  }
  if (format === "big_vision" && req.tokenizerModel === undefined) {
    throw new MissingTokenizerError(req.source);
  }
  const entry = join(req.root, cacheEntryName(req));
  const found = reuse(entry, log);
  if (found) return found;
  await ensureDir(req.root);
  const lock = await lockEntry(
    entry,
    () => log(`waiting for another run converting ${req.source} into ${entry}`),
  );
  try {
    const done = reuse(entry, log);
    if (done) return done;
    log(`converting ${req.source} into the cache at ${entry} (first run)`);
    await convertInto(entry, format, req);
    touch(entry);
    return { path: entry, converted: true };
  } finally {
    lock?.close();
  }
}
