/**
 * Atomic output of a converted model folder: everything is written to a temporary folder beside
 * the destination (`.NAME.partial-XXXX`), then renamed into place (the whole folder when the
 * destination is new, file by file when adding another precision to an existing folder). The
 * writer holds an advisory lock on its temporary folder, so partial folders left by an
 * interrupted run (unlocked: their process is gone) are told apart from those of a convert still
 * running, and removed by the next run.
 * @module
 */

import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { describeFsError, InputError } from "../errors.ts";
import type { Json } from "./configs.ts";

/** Name prefix of the temporary folders beside `dst`: `.NAME.partial-`. */
export function partialPrefix(dst: string): string {
  return `.${basename(dst)}.partial-`;
}

/** A temporary folder beside the destination, locked while its writer runs. */
export interface PartialDir {
  /** The folder. */
  readonly path: string;
  /** Releases the lock (once the folder is renamed into place or removed). */
  release(): void;
}

/**
 * Opens `dir` and takes an exclusive advisory lock on it (released when the process ends);
 * undefined where a folder cannot be opened or locked (then it is not protected).
 */
async function lockDir(dir: string): Promise<Deno.FsFile | undefined> {
  try {
    const f = await Deno.open(dir, { read: true });
    if (await f.tryLock(true)) return f;
    f.close();
  } catch { /* folders cannot be locked here */ }
  return undefined;
}

/** Whether another process holds the lock on folder `dir` (a convert still writing it). */
function inUse(dir: string): boolean {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(dir, { read: true });
  } catch {
    return false;
  }
  try {
    return !f.tryLockSync(true);
  } catch {
    return false;
  } finally {
    f.close();
  }
}

/** A fresh, locked temporary folder next to `dst` (see removeStalePartials). */
export async function tempDirBeside(dst: string): Promise<PartialDir> {
  const parent = dirname(dst);
  let path: string;
  try {
    await Deno.mkdir(parent, { recursive: true });
    path = await Deno.makeTempDir({ dir: parent, prefix: partialPrefix(dst) });
  } catch (err) {
    throw describeFsError(err, parent, "creating a temporary folder");
  }
  const lock = await lockDir(path);
  return { path, release: () => lock?.close() };
}

/**
 * Removes the partial folders that interrupted runs left beside `dst` and returns their paths.
 * Folders still locked by their writer (another convert into `dst` running) are kept.
 */
export async function removeStalePartials(dst: string): Promise<string[]> {
  const parent = dirname(dst);
  const prefix = partialPrefix(dst);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(parent, { withFileTypes: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || (err as { code?: string }).code === "ENOENT") {
      return [];
    }
    throw describeFsError(err, parent, "listing");
  }
  const removed: string[] = [];
  for (const e of entries) {
    const path = join(parent, e.name);
    if (!e.isDirectory() || !e.name.startsWith(prefix) || inUse(path)) continue;
    try {
      await Deno.remove(path, { recursive: true });
    } catch (err) {
      throw describeFsError(err, path, "removing a stale partial folder");
    }
    removed.push(path);
  }
  return removed;
}

/** Files under `dir`, relative, recursively. */
function listFiles(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, r));
    else out.push(r);
  }
  return out;
}

/** config.json of `tmp` with the transformers.js external-data map of `dst`'s config merged in. */
function mergedConfig(tmpConfig: string, dstConfig: string): string {
  const fresh = JSON.parse(fs.readFileSync(tmpConfig, "utf8")) as Json;
  let old: Json = {};
  try {
    old = JSON.parse(fs.readFileSync(dstConfig, "utf8")) as Json;
  } catch {
    return JSON.stringify(fresh, null, 2) + "\n";
  }
  const key = "transformers.js_config";
  const ext = (j: Json) => ((j[key] as Json | undefined)?.use_external_data_format ?? {}) as Json;
  fresh[key] = {
    ...(fresh[key] as Json),
    use_external_data_format: { ...ext(old), ...ext(fresh) },
  };
  return JSON.stringify(fresh, null, 2) + "\n";
}

/** Options of `commitDir`. */
export interface CommitOptions {
  /**
   * The destination holds another model being replaced: its graphs (`onnx/*.onnx`,
   * `*.onnx_data`) that the new files do not overwrite are removed, and its config is not merged.
   */
  readonly replace?: boolean;
}

/** Removes `dst/onnx` graph files not in `keep` (relative paths); returns the removed ones. */
async function removeOtherGraphs(dst: string, keep: ReadonlySet<string>): Promise<string[]> {
  const onnxDir = join(dst, "onnx");
  if (!fs.existsSync(onnxDir)) return [];
  const removed: string[] = [];
  for (const name of fs.readdirSync(onnxDir)) {
    const rel = `onnx/${name}`;
    if (keep.has(rel) || !/\.onnx(_data)?$/.test(name)) continue;
    try {
      await Deno.remove(join(dst, rel));
    } catch (err) {
      throw describeFsError(err, join(dst, rel), "removing");
    }
    removed.push(rel);
  }
  return removed;
}

/**
 * Moves the finished `tmp` folder to `dst` (see module doc) and removes `tmp`. Returns the
 * `onnx/` files of a replaced model that were removed (see CommitOptions.replace).
 */
export async function commitDir(
  tmp: string,
  dst: string,
  opts: CommitOptions = {},
): Promise<string[]> {
  let exists = false;
  try {
    const st = await Deno.stat(dst);
    if (!st.isDirectory) throw new InputError(`${dst}: exists and is not a folder`);
    exists = true;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw describeFsError(err, dst);
  }
  if (!exists) {
    try {
      await Deno.chmod(tmp, 0o755);
      await Deno.rename(tmp, dst);
    } catch (err) {
      throw describeFsError(err, dst, "moving the converted folder into place");
    }
    return [];
  }
  const tmpConfig = join(tmp, "config.json");
  if (!opts.replace && fs.existsSync(tmpConfig)) {
    try {
      fs.writeFileSync(tmpConfig, mergedConfig(tmpConfig, join(dst, "config.json")));
    } catch (err) {
      throw describeFsError(err, tmpConfig, "writing");
    }
  }
  // Data files first, then graphs, then JSON: a reader never sees a graph without its data.
  const files = listFiles(tmp).sort((a, b) => rank(a) - rank(b));
  const removed = opts.replace ? await removeOtherGraphs(dst, new Set(files)) : [];
  for (const f of files) {
    try {
      await Deno.mkdir(dirname(join(dst, f)), { recursive: true });
      await Deno.rename(join(tmp, f), join(dst, f));
    } catch (err) {
      throw describeFsError(err, join(dst, f), "moving into place");
    }
  }
  await Deno.remove(tmp, { recursive: true });
  return removed;
}

function rank(f: string): number {
  return f.endsWith(".onnx_data") ? 0 : f.endsWith(".onnx") ? 1 : 2;
}
