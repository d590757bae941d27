/**
 * `convert --config`: an HF-style config.json whose values replace the ones inferred from a
 * checkpoint (a big_vision npz cannot carry PaliGemma 2's `query_pre_attn_scalar` or soft-caps),
 * after checking that every size it states matches the checkpoint's tensors.
 * @module
 */

import { readJsonFile } from "../json_file.ts";
import { InputError } from "../errors.ts";
import { type PaliGemmaConfig, parseHfConfig } from "../model/config.ts";

/** Reads and parses `path` as JSON; unreadable or malformed files are InputErrors. */
export function readConfigJson(path: string): Promise<unknown> {
  return readJsonFile(path);
}

/**
 * `inferred` with the values of the HF config `json` (from `source`). Sizes fixed by the tensors
 * (widths, layers, heads, image and patch size) must agree; the checkpoint's vocabulary rows and
 * tying are kept (the override may state a larger, padded vocabulary, never a smaller one).
 */
export function overrideConfig(
  inferred: PaliGemmaConfig,
  json: unknown,
  source: string,
): PaliGemmaConfig {
  const o = parseHfConfig(json, source);
  const checks: [string, unknown, unknown][] = [
    ["text_config.model_type", o.text.variant, inferred.text.variant],
    ["text_config.hidden_size", o.text.hiddenSize, inferred.text.hiddenSize],
    ["text_config.intermediate_size", o.text.intermediateSize, inferred.text.intermediateSize],
    ["text_config.num_hidden_layers", o.text.numLayers, inferred.text.numLayers],
    ["text_config.num_attention_heads", o.text.numHeads, inferred.text.numHeads],
    ["text_config.num_key_value_heads", o.text.numKvHeads, inferred.text.numKvHeads],
    ["text_config.head_dim", o.text.headDim, inferred.text.headDim],
    ["vision_config.image_size", o.vision.imageSize, inferred.vision.imageSize],
    ["vision_config.patch_size", o.vision.patchSize, inferred.vision.patchSize],
    ["vision_config.hidden_size", o.vision.hiddenSize, inferred.vision.hiddenSize],
    [
      "vision_config.intermediate_size",
      o.vision.intermediateSize,
      inferred.vision.intermediateSize,
    ],
    ["vision_config.num_hidden_layers", o.vision.numLayers, inferred.vision.numLayers],
    ["projection_dim", o.projectionDim, inferred.projectionDim],
  ];
  for (const [key, got, want] of checks) {
    if (got !== want) {
      throw new InputError(`${source}: ${key} is ${got} but the checkpoint's tensors give ${want}`);
    }
  }
  if (inferred.vision.hiddenSize % o.vision.numHeads !== 0) {
    throw new InputError(
      `${source}: vision_config.num_attention_heads ${o.vision.numHeads} does not divide ` +
        `the vision width ${inferred.vision.hiddenSize}`,
    );
  }
  if (o.text.vocabSize < inferred.text.vocabSize) {
    throw new InputError(
      `${source}: text_config.vocab_size ${o.text.vocabSize} is smaller than the checkpoint's ` +
        `${inferred.text.vocabSize} embedding rows`,
    );
  }
  return {
    ...o,
    text: {
      ...o.text,
      vocabSize: inferred.text.vocabSize,
      tieWordEmbeddings: inferred.text.tieWordEmbeddings,
    },
  };
}
