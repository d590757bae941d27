/**
 * A converted model folder (the transformers.js layout `convert` writes): which precisions it
 * holds, its config and its stop ids. Checkpoints that still need converting are refused with a
 * message saying so.
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import { readHfConfig } from "../checkpoint/hf.ts";
import { describeFsError, InputError } from "../errors.ts";
import type { PaliGemmaConfig } from "../model/config.ts";
import { type Precision, PRECISION_SUFFIX, PRECISIONS } from "../model/precision.ts";

/** Weight precisions a model folder can hold, best (most accurate) first. */
export const DTYPES = PRECISIONS;

/** One weight precision. */
export type Dtype = Precision;

/** File-name suffix of each precision in the transformers.js layout. */
export const DTYPE_SUFFIX = PRECISION_SUFFIX;

/** The three graphs of a model folder. */
export const GRAPHS = ["vision_encoder", "embed_tokens", "decoder_model_merged"] as const;

/** One graph of a model folder. */
export type GraphName = typeof GRAPHS[number];

/** An opened model folder. */
export interface ModelDir {
  /** Folder path as given. */
  readonly path: string;
  /** Model configuration from config.json. */
  readonly config: PaliGemmaConfig;
  /** Precisions whose three graphs are all present, best first. */
  readonly dtypes: readonly Dtype[];
  /** Every end-of-sequence id (config.json and generation_config.json together). */
  readonly eosIds: readonly number[];
  /** Path of `tokenizer.json` (or `tokenizer.model`). */
  readonly tokenizer: string;
  /** Path of one graph at one precision. */
  graph(name: GraphName, dtype: Dtype): string;
}

function isFile(path: string): boolean {
  try {
    return fs.statSync(path).isFile();
  } catch {
    return false;
  }
}

function convertHint(path: string, what: string): InputError {
  return new InputError(
    `${path}: is ${what}, not a converted model folder; run 'pg convert ${path} <dir>' first ` +
      `and pass --model <dir>`,
  );
}

/** Ids listed under `eos_token_id` of a JSON file, or [] when the file or key is absent. */
function eosIdsIn(path: string): number[] {
  if (!isFile(path)) return [];
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(path, "utf8"));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(`${path}: not valid JSON (${why})`);
  }
  const v = (json as Record<string, unknown> | null)?.eos_token_id;
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  if (!list.every((x) => Number.isInteger(x))) {
    throw new InputError(`${path}: eos_token_id must be token ids, got ${JSON.stringify(v)}`);
  }
  return list as number[];
}

/**
 * Opens a converted model folder. An HF checkpoint folder or a big_vision `.npz` gets an
 * InputError telling the user to run `convert` first; so does a folder without all three graphs of
 * any precision.
 */
export async function openModelDir(path: string): Promise<ModelDir> {
  let stat: Deno.FileInfo;
  try {
    stat = Deno.statSync(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  if (!stat.isDirectory) {
    if (/\.(npz|npy)$/i.test(path)) throw convertHint(path, "a big_vision checkpoint");
    if (/\.safetensors(\.index\.json)?$/i.test(path)) throw convertHint(path, "an HF checkpoint");
    throw new InputError(`${path}: is a file; --model expects a converted model folder`);
  }
  const onnxDir = join(path, "onnx");
  const hasOnnx = fs.existsSync(onnxDir) && fs.statSync(onnxDir).isDirectory();
  if (!hasOnnx) {
    const hf = isFile(join(path, "model.safetensors")) ||
      isFile(join(path, "model.safetensors.index.json"));
    if (hf) throw convertHint(path, "an HF checkpoint folder");
    throw new InputError(
      `${path}: no onnx/ folder; --model expects a folder written by 'pg convert'`,
    );
  }
  const graph = (name: GraphName, dtype: Dtype) =>
    join(onnxDir, `${name}${DTYPE_SUFFIX[dtype]}.onnx`);
  const dtypes = DTYPES.filter((d) => GRAPHS.every((g) => isFile(graph(g, d))));
  if (dtypes.length === 0) {
    throw new InputError(
      `${path}: onnx/ lacks a complete set of vision_encoder, embed_tokens and ` +
        `decoder_model_merged graphs of any precision; re-run 'pg convert'`,
    );
  }
  const config = await readHfConfig(path);
  const tokenizer = ["tokenizer.json", "tokenizer.model"].map((f) => join(path, f)).find(isFile);
  if (tokenizer === undefined) {
    throw new InputError(`${path}: no tokenizer.json or tokenizer.model in the model folder`);
  }
  const eos = new Set<number>([
    ...(config.eosTokenIds ?? [config.eosTokenId]),
    ...eosIdsIn(join(path, "generation_config.json")),
  ]);
  return { path, config, dtypes, eosIds: [...eos], tokenizer, graph };
}

/** The precision to load: `wanted` when present, else the best one present. */
export function pickDtype(dir: ModelDir, wanted?: Dtype): Dtype {
  if (wanted === undefined) return dir.dtypes[0];
  if (dir.dtypes.includes(wanted)) return wanted;
  throw new InputError(
    `${dir.path}: has no ${wanted} graphs (present: ${dir.dtypes.join(", ")}); ` +
      `convert with --dtype ${wanted} or pick another --dtype`,
  );
}
