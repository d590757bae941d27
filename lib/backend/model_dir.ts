/**
 * A converted model folder (the transformers.js layout `convert` writes): which precisions it
 * holds, its config, its image pre-processing and its stop ids. Checkpoints that still need
 * converting are refused with a typed error saying so (lib/backend/model_errors.ts).
 * @module
 */

import { readJsonFileSync } from "../json_file.ts";
import * as fs from "node:fs";
import { join } from "node:path";
import { readHfConfig } from "../checkpoint/hf.ts";
import { describeFsError, InputError } from "../errors.ts";
import {
  DEFAULT_PREPROCESS,
  parsePreprocessConfig,
  type PreprocessConfig,
} from "../image/preprocess_config.ts";
import { readProcessorSettings } from "../image/processor_file.ts";
import type { PaliGemmaConfig } from "../model/config.ts";
import { type Precision, PRECISION_SUFFIX, PRECISIONS } from "../model/precision.ts";
import { MissingGraphs, MissingPrecision, NotAModelFolder, NotConverted } from "./model_errors.ts";

/** The three graphs of a model folder. */
export const GRAPHS = ["vision_encoder", "embed_tokens", "decoder_model_merged"] as const;

/** One graph of a model folder. */
export type GraphName = typeof GRAPHS[number];

/**
 * What every command needs of a model whatever the backend: its config, image pre-processing,
 * stop ids and tokenizer. A converted folder (`ModelDir`) and a checkpoint read as it is
 * (lib/backend/model_source.ts) both give one.
 */
export interface ModelInfo {
  /** Folder or file path as given. */
  readonly path: string;
  /** Model configuration. */
  readonly config: PaliGemmaConfig;
  /** Image pre-processing. */
  readonly preprocess: PreprocessConfig;
  /** Every end-of-sequence id. */
  readonly eosIds: readonly number[];
  /** Path of the tokenizer (`tokenizer.json` or `tokenizer.model`). */
  readonly tokenizer: string;
}

/** An opened model folder. */
export interface ModelDir extends ModelInfo {
  /** Folder path as given. */
  readonly path: string;
  /** Model configuration from config.json. */
  readonly config: PaliGemmaConfig;
  /**
   * Image pre-processing from preprocessor_config.json or processor_config.json (HF PaliGemma's
   * when neither is there).
   */
  readonly preprocess: PreprocessConfig;
  /** Precisions whose three graphs are all present, best first. */
  readonly dtypes: readonly Precision[];
  /** Every end-of-sequence id (config.json and generation_config.json together). */
  readonly eosIds: readonly number[];
  /** Path of `tokenizer.json` (or `tokenizer.model`). */
  readonly tokenizer: string;
  /** Path of one graph at one precision. */
  graph(name: GraphName, dtype: Precision): string;
}

function isFile(path: string): boolean {
  try {
    return fs.statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Ids listed under `eos_token_id` of a JSON file, or [] when the file or key is absent. */
export function eosIdsIn(path: string): number[] {
  if (!isFile(path)) return [];
  const json = readJsonFileSync(path);
  const v = (json as Record<string, unknown> | null)?.eos_token_id;
  const list = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
  if (!list.every((x) => Number.isInteger(x))) {
    throw new InputError(`${path}: eos_token_id must be token ids, got ${JSON.stringify(v)}`);
  }
  return list as number[];
}

/**
 * Opens a converted model folder. An HF checkpoint (folder or file) or a big_vision `.npz` is
 * refused with NotConverted, another file or a folder without `onnx/` with NotAModelFolder, a
 * folder without all three graphs of any precision with MissingGraphs, and a
 * preprocessor_config.json the image path cannot honour with UnsupportedPreprocessing.
 */
export async function openModelDir(path: string): Promise<ModelDir> {
  let stat: Deno.FileInfo;
  try {
    stat = Deno.statSync(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  if (!stat.isDirectory) {
    if (/\.(npz|npy)$/i.test(path)) throw new NotConverted(path, "a big_vision checkpoint");
    if (/\.safetensors(\.index\.json)?$/i.test(path)) {
      throw new NotConverted(path, "an HF checkpoint");
    }
    throw new NotAModelFolder(path, "file");
  }
  const onnxDir = join(path, "onnx");
  const hasOnnx = fs.existsSync(onnxDir) && fs.statSync(onnxDir).isDirectory();
  if (!hasOnnx) {
    const hf = isFile(join(path, "model.safetensors")) ||
      isFile(join(path, "model.safetensors.index.json"));
    if (hf) throw new NotConverted(path, "an HF checkpoint folder");
    throw new NotAModelFolder(path, "no onnx folder");
  }
  const graph = (name: GraphName, dtype: Precision) =>
    join(onnxDir, `${name}${PRECISION_SUFFIX[dtype]}.onnx`);
  const dtypes = PRECISIONS.filter((d) => GRAPHS.every((g) => isFile(graph(g, d))));
  if (dtypes.length === 0) throw new MissingGraphs(path);
  const config = await readHfConfig(path);
  const settings = readProcessorSettings(path);
  const preprocess = settings === undefined ? DEFAULT_PREPROCESS : parsePreprocessConfig(
    settings.json,
    settings.path,
    { imageSize: config.vision.imageSize, imageTokens: config.numImageTokens },
  );
  const tokenizer = ["tokenizer.json", "tokenizer.model"].map((f) => join(path, f)).find(isFile);
  if (tokenizer === undefined) {
    throw new InputError(`${path}: no tokenizer.json or tokenizer.model in the model folder`);
  }
  const eos = new Set<number>([
    ...(config.eosTokenIds ?? [config.eosTokenId]),
    ...eosIdsIn(join(path, "generation_config.json")),
  ]);
  return { path, config, preprocess, dtypes, eosIds: [...eos], tokenizer, graph };
}

/** The precision to load: `wanted` when present (else MissingPrecision), or the best present. */
export function pickPrecision(dir: ModelDir, wanted?: Precision): Precision {
  if (wanted === undefined) return dir.dtypes[0];
  if (dir.dtypes.includes(wanted)) return wanted;
  throw new MissingPrecision(dir.path, wanted, dir.dtypes);
}
