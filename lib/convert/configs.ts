/**
 * The JSON files of a converted model folder: config.json (HF PaliGemma layout plus
 * `text_config.head_dim`, `num_image_tokens` and transformers.js settings), generation_config.json
 * and preprocessor_config.json (the HF source folder's values over PaliGemma's defaults).
 * @module
 */

import * as fs from "node:fs";
import { dirname } from "node:path";
import { parsePreprocessConfig } from "../image/preprocess_config.ts";
import { readProcessorSettings } from "../image/processor_file.ts";
import { type PaliGemmaConfig, toHfConfigJson } from "../model/config.ts";

/** JSON object type. */
export type Json = Record<string, unknown>;

/**
 * config.json: the hub layout of `toHfConfigJson` plus what transformers.js reads
 * (`text_config.head_dim`, `num_image_tokens`, its external-data map); `externalData` lists the
 * .onnx files (basenames) that have `.onnx_data`.
 */
export function modelConfigJson(cfg: PaliGemmaConfig, externalData: readonly string[]): Json {
  const hub = toHfConfigJson(cfg);
  const ids = {
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenId,
    pad_token_id: cfg.padTokenId,
  };
  return {
    ...hub,
    ...ids,
    hidden_size: cfg.text.hiddenSize,
    num_image_tokens: cfg.numImageTokens,
    paligemma_version: cfg.version,
    text_config: {
      ...(hub.text_config as Json),
      ...ids,
      max_position_embeddings: 8192,
      query_pre_attn_scalar: cfg.text.queryPreAttnScalar,
    },
    "transformers.js_config": {
      use_external_data_format: Object.fromEntries(externalData.map((f) => [f, 1])),
    },
  };
}

/** generation_config.json. */
export function generationConfigJson(cfg: PaliGemmaConfig): Json {
  return {
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenId,
    pad_token_id: cfg.padTokenId,
  };
}

/**
 * preprocessor_config.json for SiglipImageProcessor as PaliGemma uses it, with the fields of
 * `source` (the HF source folder's file, see {@link sourcePreprocessorJson}) replacing the
 * defaults.
 */
export function preprocessorConfigJson(cfg: PaliGemmaConfig, source: Json = {}): Json {
  const s = cfg.vision.imageSize;
  const defaults: Json = {
    processor_class: "PaliGemmaProcessor",
    image_processor_type: "SiglipImageProcessor",
    do_convert_rgb: true,
    do_resize: true,
    size: { height: s, width: s },
    resample: 3,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
    image_seq_length: cfg.numImageTokens,
  };
  return { ...defaults, ...source };
}

/**
 * The image-processor settings of an HF source (a folder, or a `.safetensors` / index file inside
 * one) when it has them: its preprocessor_config.json (transformers 4.x) or the `image_processor`
 * of its processor_config.json (transformers 5.x), checked to be one the runtime can honour for `cfg` (else
 * UnsupportedPreprocessing naming the file, before any conversion work); undefined for other
 * sources (a big_vision `.npz` carries none).
 */
export function sourcePreprocessorJson(srcPath: string, cfg: PaliGemmaConfig): Json | undefined {
  let dir: string;
  try {
    if (fs.statSync(srcPath).isDirectory()) dir = srcPath;
    else if (/\.safetensors(\.index\.json)?$/i.test(srcPath)) dir = dirname(srcPath);
    else return undefined;
  } catch {
    return undefined;
  }
  const settings = readProcessorSettings(dir);
  if (settings === undefined) return undefined;
  parsePreprocessConfig(settings.json, settings.path, {
    imageSize: cfg.vision.imageSize,
    imageTokens: cfg.numImageTokens,
  });
  return settings.json;
}
