/**
 * `loadTokenizer`: opens a `tokenizer.json`, a `tokenizer.model` or a folder holding either.
 * @module
 */

import { basename, dirname, join } from "node:path";
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

/** Loads a `tokenizer.json` and, when present beside it, its `tokenizer_config.json`. */
export async function loadHuggingFaceTokenizer(path: string): Promise<HuggingFaceTokenizer> {
  const json = await readJsonObject(path, "tokenizer.json");
  const configPath = join(dirname(path), "tokenizer_config.json");
  const config = await exists(configPath)
    ? await readJsonObject(configPath, "tokenizer_config.json")
    : {};
  return new HuggingFaceTokenizer(json, config, path);
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
