/**
 * `loadTokenizer`: opens a `tokenizer.json`, a `tokenizer.model` or a folder holding either.
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import { cacheFolder } from "../convert/cache_entries.ts";
import {
  buildTokenizerCache,
  readTokenizerCache,
  TOKENIZER_CACHE,
  type TokenizerSource,
} from "./cache.ts";
import { describeFsError, InputError } from "../errors.ts";
import { HuggingFaceTokenizer, type JsonObject } from "./hf.ts";
import { SentencePieceTokenizer } from "./sentencepiece.ts";
import type { Tokenizer } from "./tokenizer.ts";

async function statOrThrow(path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw describeFsError(err, path);
  }
}

async function readJsonObject(path: string, what: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(`${path}: not valid JSON for a ${what} (${why})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InputError(`${path}: a ${what} must be a JSON object`);
  }
  return value as JsonObject;
}

/** Size and modification time (ms) of a file, or null when it does not exist. */
async function fileStamp(path: string): Promise<[number, number] | null> {
  try {
    const st = await Deno.stat(path);
    return st.isFile ? [st.size, st.mtime?.getTime() ?? 0] : null;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw describeFsError(err, path);
  }
}

/** Where the cache of `path` goes in the user's cache: one file per tokenizer.json path. */
async function userCachePath(path: string): Promise<string | undefined> {
  let root: string;
  try {
    root = cacheFolder((name) => Deno.env.get(name));
  } catch {
    return undefined;
  }
  const real = await Deno.realPath(path).catch(() => resolve(path));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(real));
  const hex = Array.from(
    new Uint8Array(digest).subarray(0, 12),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  return join(root, TOKENIZER_CACHE_DIR, `${hex}.pgcache`);
}

/** Folder of the model cache (dot-named: not an entry) holding caches of tokenizers elsewhere. */
export const TOKENIZER_CACHE_DIR = ".tokenizers";

/** A tokenizer.json at least this large gets a cache in the user's cache on its first load. */
export const USER_CACHE_MIN_BYTES = 1 << 20;

async function readCache(
  cachePath: string | undefined,
  source: TokenizerSource,
  path: string,
): Promise<HuggingFaceTokenizer | null> {
  if (cachePath === undefined) return null;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(cachePath);
  } catch {
    return null;
  }
  try {
    const hit = readTokenizerCache(bytes, source);
    return hit === null ? null : new HuggingFaceTokenizer(hit.json, hit.config, path, hit.tok);
  } catch {
    return null; // a cache that does not build is ignored: the JSON is the truth
  }
}

/** Writes `bytes` to `path` through a temporary name (best effort: a cache is optional). */
async function writeCacheFile(path: string, bytes: Uint8Array): Promise<boolean> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
    return true;
  } catch {
    await Deno.remove(tmp).catch(() => {});
    return false;
  }
}

async function tokenizerSource(path: string): Promise<TokenizerSource> {
  const json = await fileStamp(path);
  if (json === null) throw describeFsError(new Deno.errors.NotFound(), path);
  return { json, config: await fileStamp(join(dirname(path), "tokenizer_config.json")) };
}

/**
 * Writes `tokenizer.pgcache` beside a `tokenizer.json` (as `convert` does); returns false when the
 * tokenizer does not fit a cache or the file cannot be written.
 */
export async function writeTokenizerCacheBeside(path: string): Promise<boolean> {
  const source = await tokenizerSource(path);
  const json = await readJsonObject(path, "tokenizer.json");
  const configPath = join(dirname(path), "tokenizer_config.json");
  const config = source.config === null
    ? {}
    : await readJsonObject(configPath, "tokenizer_config.json");
  const bytes = buildTokenizerCache(json, config, source);
  return bytes !== null && await writeCacheFile(join(dirname(path), TOKENIZER_CACHE), bytes);
}

/**
 * Loads a `tokenizer.json` and, when present beside it, its `tokenizer_config.json`: from the
 * pre-built cache beside it (`tokenizer.pgcache`, written by `convert`) or in the user's model cache
 * when one was built from these very files, else from the JSON (then, for a large tokenizer, the
 * cache is written to the user's model cache for the next load).
 */
export async function loadHuggingFaceTokenizer(path: string): Promise<HuggingFaceTokenizer> {
  const source = await tokenizerSource(path);
  const beside = await readCache(join(dirname(path), TOKENIZER_CACHE), source, path);
  if (beside !== null) return beside;
  const userCache = source.json[0] >= USER_CACHE_MIN_BYTES ? await userCachePath(path) : undefined;
  const cached = await readCache(userCache, source, path);
  if (cached !== null) return cached;
  const json = await readJsonObject(path, "tokenizer.json");
  const configPath = join(dirname(path), "tokenizer_config.json");
  const config = source.config === null
    ? {}
    : await readJsonObject(configPath, "tokenizer_config.json");
  const tok = new HuggingFaceTokenizer(json, config, path);
  if (userCache !== undefined) {
    const bytes = buildTokenizerCache(json, config, source);
    if (bytes !== null) await writeCacheFile(userCache, bytes);
  }
  return tok;
}

/** Loads a SentencePiece `tokenizer.model`. */
export async function loadSentencePieceTokenizer(path: string): Promise<SentencePieceTokenizer> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  return SentencePieceTokenizer.fromBytes(bytes, path);
}

async function looksLikeJson(path: string): Promise<boolean> {
  using file = await Deno.open(path);
  const head = new Uint8Array(64);
  const n = (await file.read(head)) ?? 0;
  const text = new TextDecoder().decode(head.subarray(0, n)).trimStart();
  return text.startsWith("{");
}

/**
 * Loads a tokenizer from a `tokenizer.json` (HF ids), a `tokenizer.model` (SentencePiece ids) or a
 * folder holding either (tokenizer.json preferred). Throws `InputError` naming the file when it is
 * missing or corrupt.
 */
export async function loadTokenizer(path: string): Promise<Tokenizer> {
  const info = await statOrThrow(path);
  if (info.isDirectory) {
    const json = join(path, "tokenizer.json");
    if (await exists(json)) return await loadHuggingFaceTokenizer(json);
    const model = join(path, "tokenizer.model");
    if (await exists(model)) return await loadSentencePieceTokenizer(model);
    throw new InputError(`${path}: folder holds neither tokenizer.json nor tokenizer.model`);
  }
  const name = basename(path).toLowerCase();
  if (name.endsWith(".json")) return await loadHuggingFaceTokenizer(path);
  if (name.endsWith(".model")) return await loadSentencePieceTokenizer(path);
  try {
    return await ((await looksLikeJson(path))
      ? loadHuggingFaceTokenizer(path)
      : loadSentencePieceTokenizer(path));
  } catch (err) {
    throw describeFsError(err, path);
  }
}
