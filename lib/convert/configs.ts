/**
 * The JSON files of a converted model folder: config.json (HF PaliGemma layout plus
 * `text_config.head_dim`, `num_image_tokens` and transformers.js settings), generation_config.json
 * and preprocessor_config.json.
 * @module
 */

import type { PaliGemmaConfig } from "../model/config.ts";

/** JSON object type. */
export type Json = Record<string, unknown>;

/** config.json; `externalData` lists the .onnx files (basenames) that have `.onnx_data`. */
export function modelConfigJson(cfg: PaliGemmaConfig, externalData: readonly string[]): Json {
  const t = cfg.text;
  const v = cfg.vision;
  const textConfig: Json = {
    model_type: t.variant,
    hidden_size: t.hiddenSize,
    intermediate_size: t.intermediateSize,
    num_hidden_layers: t.numLayers,
    num_attention_heads: t.numHeads,
    num_key_value_heads: t.numKvHeads,
    head_dim: t.headDim,
    vocab_size: t.vocabSize,
    rms_norm_eps: t.rmsNormEps,
    rope_theta: t.ropeTheta,
    max_position_embeddings: 8192,
    hidden_activation: "gelu_pytorch_tanh",
    query_pre_attn_scalar: t.queryPreAttnScalar,
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenId,
    pad_token_id: cfg.padTokenId,
  };
  if (t.variant === "gemma2") {
    textConfig.attn_logit_softcapping = t.attnLogitSoftcap;
    textConfig.final_logit_softcapping = t.finalLogitSoftcap;
    textConfig.sliding_window = t.slidingWindow;
  }
  return {
    architectures: ["PaliGemmaForConditionalGeneration"],
    model_type: "paligemma",
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenId,
    pad_token_id: cfg.padTokenId,
    hidden_size: t.hiddenSize,
    image_token_index: cfg.imageTokenIndex,
    projection_dim: cfg.projectionDim,
    num_image_tokens: cfg.numImageTokens,
    vocab_size: t.vocabSize,
    paligemma_version: cfg.version,
    text_config: textConfig,
    vision_config: {
      model_type: "siglip_vision_model",
      hidden_size: v.hiddenSize,
      intermediate_size: v.intermediateSize,
      num_hidden_layers: v.numLayers,
      num_attention_heads: v.numHeads,
      patch_size: v.patchSize,
      image_size: v.imageSize,
      layer_norm_eps: v.layerNormEps,
      hidden_act: "gelu_pytorch_tanh",
      projection_dim: cfg.projectionDim,
      num_image_tokens: cfg.numImageTokens,
      vision_use_head: false,
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

/** preprocessor_config.json for SiglipImageProcessor as PaliGemma uses it. */
export function preprocessorConfigJson(cfg: PaliGemmaConfig): Json {
  const s = cfg.vision.imageSize;
  return {
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
}
