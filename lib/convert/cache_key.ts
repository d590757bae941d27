/**
 * Which paths are checkpoints the model cache converts (an HF safetensors folder or a big_vision
 * `.npz`), and the name of a checkpoint's cache entry: `<name>-<hash>-<precision>`, where the hash
 * covers every source file's relative path, size and modification time (hidden files left out),
 * the tokenizer.model and config.json given with it, and the toolkit's version. Any change to the
 * source gives another name, so a changed checkpoint is converted again.
 * @module
 */

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import config from "../../deno.json" with { type: "json" };
import { describeFsError } from "../errors.ts";
import type { Precision } from "../model/precision.ts";

/** Checkpoint layouts the cache converts. */
export type CacheSourceFormat = "hf" | "big_vision";

/** Hex digits of the hash in an entry name. */
const HASH_DIGITS = 16;

function statOrUndefined(path: string): fs.Stats | undefined {
  try {
    return fs.statSync(path);
  } catch {
    return undefined;
  }
}

const isFile = (path: string) => statOrUndefined(path)?.isFile() === true;

/**
 * The format of `path` when it is a checkpoint to convert: "hf" for a folder with config.json and
 * model.safetensors (or its index) and no onnx/ folder, or a `.safetensors` / index file;
 * "big_vision" for a `.npz` file. Undefined otherwise (a converted folder, or not a model).
 */
export function cacheSourceFormat(path: string): CacheSourceFormat | undefined {
  const st = statOrUndefined(path);
  if (st === undefined) return undefined;
  if (st.isDirectory()) {
    if (statOrUndefined(join(path, "onnx"))?.isDirectory()) return undefined;
    if (!isFile(join(path, "config.json"))) return undefined;
    const weights = isFile(join(path, "model.safetensors")) ||
      isFile(join(path, "model.safetensors.index.json"));
    return weights ? "hf" : undefined;
  }
  if (/\.npz$/i.test(path)) return "big_vision";
  if (/\.safetensors(\.index\.json)?$/i.test(path)) return "hf";
  return undefined;
}

/** What a cache entry is made from. */
export interface CacheKeyInput {
  /** The checkpoint: HF folder (or a safetensors file in one) or big_vision `.npz`. */
  readonly source: string;
  /** Precision converted to. */
  readonly precision: Precision;
  /** tokenizer.model the tokenizer files are written from, if given. */
  readonly tokenizerModel?: string;
  /** config.json whose values replace the checkpoint's, if given. */
  readonly configFile?: string;
}

/** The folder whose files make an HF checkpoint given as one of its files, else `source`. */
function sourceRoot(source: string): string {
  const st = statOrUndefined(source);
  return st?.isFile() && /\.safetensors(\.index\.json)?$/i.test(source) ? dirname(source) : source;
}

/** `rel<TAB>size<TAB>mtime-ns` lines of the files under `dir`, hidden ones left out, sorted. */
function folderLines(dir: string, rel = ""): string[] {
  const out: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(join(dir, rel), { withFileTypes: true });
  } catch (err) {
    throw describeFsError(err, join(dir, rel), "listing");
  }
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const r = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...folderLines(dir, r));
    else out.push(fileLine(join(dir, r), r));
  }
  return out.sort();
}

/** `label<TAB>size<TAB>mtime-ns` of one file (symbolic links followed). */
function fileLine(path: string, label: string): string {
  let st: fs.BigIntStats;
  try {
    st = fs.statSync(path, { bigint: true });
  } catch (err) {
    throw describeFsError(err, path);
  }
  return `${label}\t${st.size}\t${st.mtimeNs}`;
}

/** The entry's readable part: the source's base name, extension dropped, made file-name safe. */
export function cacheBaseName(source: string): string {
  const root = sourceRoot(source);
  let name = basename(root.replace(/[\\/]+$/, ""));
  if (root === source) name = name.replace(/\.(npz|safetensors(\.index\.json)?)$/i, "");
  name = name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^[.]+/, "").slice(0, 64);
  return name === "" ? "model" : name;
}

/** The hash part of the entry name (see the module doc). */
export function cacheHash(input: CacheKeyInput): string {
  const root = sourceRoot(input.source);
  const st = statOrUndefined(root);
  const lines = [`pg ${config.version}`];
  if (st?.isDirectory()) lines.push(...folderLines(root));
  else lines.push(fileLine(root, "source"));
  if (input.tokenizerModel !== undefined) lines.push(fileLine(input.tokenizerModel, "tokenizer"));
  if (input.configFile !== undefined) lines.push(fileLine(input.configFile, "config"));
  return createHash("sha256").update(lines.join("\n")).digest("hex").slice(0, HASH_DIGITS);
}

/** The cache entry name of a checkpoint: `<name>-<hash>-<precision>`. */
export function cacheEntryName(input: CacheKeyInput): string {
  return `${cacheBaseName(input.source)}-${cacheHash(input)}-${input.precision}`;
}
