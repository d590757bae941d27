/**
 * Whether a destination folder already holds the model being converted: its config.json is
 * compared, field by field, with the config being written (architecture, text and vision sizes,
 * and the Gemma 2 values baked into the graphs). Adding a precision of the same model is fine; a
 * different model would leave the folder with graphs of two models under one config.
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import { InputError } from "../errors.ts";
import { isTied, type PaliGemmaConfig, parseHfConfig } from "../model/config.ts";

/** A field where two configs differ, by its config.json key. */
export interface ConfigDifference {
  /** config.json key, e.g. `text_config.hidden_size`. */
  readonly field: string;
  /** Value in the folder's config.json. */
  readonly existing: string;
  /** Value of the model being converted. */
  readonly incoming: string;
}

/** The folder at `folder` holds a different model (or an unreadable config.json). */
export class DifferentModelError extends InputError {
  /** `difference` is absent when the folder's config.json could not be read (`why`). */
  constructor(
    readonly folder: string,
    readonly difference: ConfigDifference | undefined,
    why?: string,
  ) {
    super(
      difference
        ? `${folder}: holds a different model (${difference.field} is ${difference.existing} ` +
          `there, ${difference.incoming} in the model being converted)`
        : `${folder}: its config.json is not a PaliGemma config (${why}); cannot tell whether ` +
          "it holds the same model",
    );
    this.name = "DifferentModelError";
  }
}

/** Compared fields, in reporting order: config.json key and the value of a config. */
const FIELDS: readonly [string, (c: PaliGemmaConfig) => unknown][] = [
  ["text_config.model_type", (c) => c.text.variant],
  ["text_config.hidden_size", (c) => c.text.hiddenSize],
  ["text_config.num_hidden_layers", (c) => c.text.numLayers],
  ["text_config.intermediate_size", (c) => c.text.intermediateSize],
  ["text_config.num_attention_heads", (c) => c.text.numHeads],
  ["text_config.num_key_value_heads", (c) => c.text.numKvHeads],
  ["text_config.head_dim", (c) => c.text.headDim],
  ["text_config.vocab_size", (c) => c.text.vocabSize],
  ["vision_config.image_size", (c) => c.vision.imageSize],
  ["vision_config.patch_size", (c) => c.vision.patchSize],
  ["vision_config.hidden_size", (c) => c.vision.hiddenSize],
  ["vision_config.num_hidden_layers", (c) => c.vision.numLayers],
  ["vision_config.intermediate_size", (c) => c.vision.intermediateSize],
  ["vision_config.num_attention_heads", (c) => c.vision.numHeads],
  ["projection_dim", (c) => c.projectionDim],
  ["tie_word_embeddings", (c) => isTied(c)],
  ["text_config.query_pre_attn_scalar", (c) => c.text.queryPreAttnScalar],
  ["text_config.attn_logit_softcapping", (c) => c.text.attnLogitSoftcap],
  ["text_config.final_logit_softcapping", (c) => c.text.finalLogitSoftcap],
  ["text_config.sliding_window", (c) => c.text.slidingWindow],
];

/** The first field (in FIELDS order) where `existing` and `incoming` differ, if any. */
export function firstDifference(
  existing: PaliGemmaConfig,
  incoming: PaliGemmaConfig,
): ConfigDifference | undefined {
  const show = (v: unknown) => (v === null ? "off" : String(v));
  for (const [field, get] of FIELDS) {
    const a = get(existing);
    const b = get(incoming);
    if (a !== b) return { field, existing: show(a), incoming: show(b) };
  }
  return undefined;
}

/**
 * Throws DifferentModelError when `folder/config.json` exists and describes another model than
 * `incoming` (or cannot be read as a PaliGemma config). A folder without config.json passes.
 */
export function checkSameModel(folder: string, incoming: PaliGemmaConfig): void {
  const path = join(folder, "config.json");
  if (!fs.existsSync(path)) return;
  let existing: PaliGemmaConfig;
  try {
    existing = parseHfConfig(JSON.parse(fs.readFileSync(path, "utf8")), path);
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(`${path}: `, "") : String(err);
    throw new DifferentModelError(folder, undefined, why.split("\n")[0]);
  }
  const diff = firstDifference(existing, incoming);
  if (diff) throw new DifferentModelError(folder, diff);
}
