/**
 * The model configuration every part of the library shares. Readers (HF config.json, big_vision
 * shape inference) produce it; graph builders and backends consume it.
 * @module
 */

import { InputError } from "../errors.ts";

/** SigLIP vision tower settings. */
export interface VisionConfig {
  /** Square input size in pixels (224, 448, 896; tiny models use less). */
  readonly imageSize: number;
  /** Patch size in pixels (14). */
  readonly patchSize: number;
  /** Width of the tower (1152). */
  readonly hiddenSize: number;
  /** MLP width (4304). */
  readonly intermediateSize: number;
  /** Encoder blocks (27). */
  readonly numLayers: number;
  /** Attention heads (16). */
  readonly numHeads: number;
  /** LayerNorm epsilon (1e-6). */
  readonly layerNormEps: number;
}

/** Gemma (PaliGemma 1) or Gemma 2 (PaliGemma 2) decoder settings. */
export interface TextConfig {
  /** `gemma` for PaliGemma 1, `gemma2` for PaliGemma 2. */
  readonly variant: "gemma" | "gemma2";
  /** Model width. */
  readonly hiddenSize: number;
  /** MLP width. */
  readonly intermediateSize: number;
  /** Decoder layers. */
  readonly numLayers: number;
  /** Query heads. */
  readonly numHeads: number;
  /** Key/value heads (1 = MQA). */
  readonly numKvHeads: number;
  /** Width of one head. */
  readonly headDim: number;
  /** Rows of the embedding table (HF checkpoints pad it, e.g. 257216). */
  readonly vocabSize: number;
  /** RMSNorm epsilon (1e-6). */
  readonly rmsNormEps: number;
  /** RoPE base (10000). */
  readonly ropeTheta: number;
  /** Queries are scaled by queryPreAttnScalar^-0.5 (head_dim for Gemma 1). */
  readonly queryPreAttnScalar: number;
  /** Gemma 2 attention-logit soft-cap, or null when off. */
  readonly attnLogitSoftcap: number | null;
  /** Gemma 2 final-logit soft-cap, or null when off. */
  readonly finalLogitSoftcap: number | null;
  /** HF Gemma 2 sliding window on even layers, or null when none. */
  readonly slidingWindow: number | null;
  /** Whether the LM head reuses the embedding table (no separate lm_head); true when absent. */
  readonly tieWordEmbeddings?: boolean;
}

/** A whole PaliGemma model. */
export interface PaliGemmaConfig {
  /** 1 = PaliGemma (Gemma 1 decoder), 2 = PaliGemma 2 (Gemma 2 decoder). */
  readonly version: 1 | 2;
  /** Vision tower. */
  readonly vision: VisionConfig;
  /** Language model. */
  readonly text: TextConfig;
  /** Output width of the projector (= text.hiddenSize). */
  readonly projectionDim: number;
  /** Id of the `<image>` token. */
  readonly imageTokenIndex: number;
  /** Image tokens per image: (imageSize / patchSize)^2. */
  readonly numImageTokens: number;
  /** Special token ids. */
  readonly padTokenId: number;
  /** Beginning-of-sequence id. */
  readonly bosTokenId: number;
  /** End-of-sequence id (the first one when the config lists several). */
  readonly eosTokenId: number;
  /** Every end-of-sequence id when the config lists several (PG2 hub configs: [1, 107]). */
  readonly eosTokenIds?: readonly number[];
}

/** Image tokens per image for a vision config: (imageSize / patchSize)^2, as HF computes it. */
export function imageTokensFor(vision: VisionConfig): number {
  return Math.floor(vision.imageSize / vision.patchSize) ** 2;
}

/** Whether the LM head is the embedding table (the default when the field is absent). */
export function isTied(config: PaliGemmaConfig): boolean {
  return config.text.tieWordEmbeddings !== false;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads typed fields of one JSON object, naming the file and key on a bad value. */
class Fields {
  constructor(readonly obj: Json, readonly where: string) {}

  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  int(key: string, fallback: number): number {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new InputError(
        `${this.where}.${key}: expected a whole number, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  num(key: string, fallback: number): number {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new InputError(`${this.where}.${key}: expected a number, got ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** A number, or null when the key is present as null (or zero, meaning off). */
  optNum(key: string, fallback: number | null): number | null {
    if (!Object.hasOwn(this.obj, key)) return fallback;
    const v = this.obj[key];
    if (v === null || v === 0) return null;
    return this.num(key, 0);
  }

  ints(key: string, fallback: number[]): number[] {
    const v = this.obj[key];
    if (v === undefined || v === null) return fallback;
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === "number" && Number.isInteger(x))) {
      throw new InputError(`${this.where}.${key}: expected token ids, got ${JSON.stringify(v)}`);
    }
    return list as number[];
  }
}

/**
 * The top-level `vocab_size` transformers 5 writes into every PaliGemma config.json (the default of
 * its PaliGemmaConfig dataclass, e.g. next to `text_config.vocab_size` 257216 or 2153): its model
 * never reads it, so it is no disagreement.
 */
const TF5_UNREAD_TOP_VOCAB = 257152;

/** Two fields of one config.json that must agree but do not: an InputError naming both. */
function disagree(source: string, a: string, va: unknown, b: string, vb: unknown): never {
  throw new InputError(
    `${source}: ${a} ${JSON.stringify(va)} disagrees with ${b} ${JSON.stringify(vb)}`,
  );
}

/**
 * `image_token_index` (transformers 4.x and 5.x) or its transformers 5 alias `image_token_id`;
 * both present with different values is an InputError naming both.
 */
function imageTokenIndex(top: Fields, source: string): number {
  const index = top.has("image_token_index") ? top.int("image_token_index", 0) : undefined;
  const id = top.has("image_token_id") ? top.int("image_token_id", 0) : undefined;
  if (index !== undefined && id !== undefined && index !== id) {
    disagree(source, "image_token_index", index, "image_token_id", id);
  }
  return index ?? id ?? 256000;
}

/** Defaults of HF's GemmaConfig / Gemma2Config for keys a config.json leaves out. */
const TEXT_DEFAULTS = {
  gemma: { hidden: 3072, inter: 24576, layers: 28, heads: 16, kv: 16, headDim: 256 },
  gemma2: { hidden: 2304, inter: 9216, layers: 26, heads: 8, kv: 4, headDim: 256 },
} as const;

/**
 * Parses an HF PaliGemma `config.json` (PaliGemma 1 or 2), filling missing keys with the defaults
 * of HF's config classes. `source` names the file in error messages.
 */
export function parseHfConfig(json: unknown, source: string): PaliGemmaConfig {
  if (!isObject(json)) throw new InputError(`${source}: expected a JSON object`);
  const top = new Fields(json, source);
  const modelType = json["model_type"];
  if (modelType !== undefined && modelType !== "paligemma") {
    throw new InputError(`${source}: model_type '${modelType}' is not paligemma`);
  }
  const visionJson = json["vision_config"];
  const textJson = json["text_config"];
  if (visionJson !== undefined && visionJson !== null && !isObject(visionJson)) {
    throw new InputError(`${source}: vision_config must be an object`);
  }
  if (textJson !== undefined && textJson !== null && !isObject(textJson)) {
    throw new InputError(`${source}: text_config must be an object`);
  }

  // HF: vision_config=None gives the So400m/14 tower; a dict starts from SiglipVisionConfig defaults.
  const v = isObject(visionJson) ? new Fields(visionJson, `${source}: vision_config`) : null;
  const vision: VisionConfig = v
    ? {
      imageSize: v.int("image_size", 224),
      patchSize: v.int("patch_size", 16),
      hiddenSize: v.int("hidden_size", 768),
      intermediateSize: v.int("intermediate_size", 3072),
      numLayers: v.int("num_hidden_layers", 12),
      numHeads: v.int("num_attention_heads", 12),
      layerNormEps: v.num("layer_norm_eps", 1e-6),
    }
    : {
      imageSize: 224,
      patchSize: 14,
      hiddenSize: 1152,
      intermediateSize: 4096,
      numLayers: 27,
      numHeads: 16,
      layerNormEps: 1e-6,
    };

  const topVocab = top.int("vocab_size", 257152);
  const textVocab = isObject(textJson) && textJson["vocab_size"] !== undefined
    ? new Fields(textJson, `${source}: text_config`).int("vocab_size", 0)
    : undefined;
  if (textVocab !== undefined && top.has("vocab_size")) {
    // transformers 5 writes its dataclass default at the top level whatever the model; it is never
    // read (the embedding comes from text_config.vocab_size), so only another value disagrees.
    if (topVocab !== textVocab && topVocab !== TF5_UNREAD_TOP_VOCAB) {
      disagree(source, "vocab_size", topVocab, "text_config.vocab_size", textVocab);
    }
  }
  let text: TextConfig;
  if (isObject(textJson)) {
    const t = new Fields(textJson, `${source}: text_config`);
    const type = textJson["model_type"] ?? "gemma";
    if (type !== "gemma" && type !== "gemma2") {
      throw new InputError(
        `${source}: text_config.model_type '${type}' is not supported (expected gemma or gemma2)`,
      );
    }
    const d = TEXT_DEFAULTS[type];
    const headDim = t.int("head_dim", d.headDim);
    const rope = isObject(textJson["rope_parameters"])
      ? new Fields(textJson["rope_parameters"], `${source}: text_config.rope_parameters`)
      : null;
    const gemma2 = type === "gemma2";
    text = {
      variant: type,
      hiddenSize: t.int("hidden_size", d.hidden),
      intermediateSize: t.int("intermediate_size", d.inter),
      numLayers: t.int("num_hidden_layers", d.layers),
      numHeads: t.int("num_attention_heads", d.heads),
      numKvHeads: t.int("num_key_value_heads", d.kv),
      headDim,
      // text_config.vocab_size is what transformers builds the embedding from; the top-level value
      // only when text_config has none (else GemmaConfig's default).
      vocabSize: textVocab ?? (json["vocab_size"] === undefined ? 256000 : topVocab),
      rmsNormEps: t.num("rms_norm_eps", 1e-6),
      ropeTheta: t.has("rope_theta")
        ? t.num("rope_theta", 10000)
        : rope?.num("rope_theta", 10000) ??
          10000,
      queryPreAttnScalar: gemma2 ? t.num("query_pre_attn_scalar", 256) : headDim,
      attnLogitSoftcap: gemma2 ? t.optNum("attn_logit_softcapping", 50) : null,
      finalLogitSoftcap: gemma2 ? t.optNum("final_logit_softcapping", 30) : null,
      slidingWindow: gemma2 ? t.optNum("sliding_window", 4096) : null,
      tieWordEmbeddings: textJson["tie_word_embeddings"] === undefined
        ? json["tie_word_embeddings"] !== false
        : textJson["tie_word_embeddings"] !== false,
    };
  } else {
    // HF: text_config=None gives PaliGemma 1's Gemma 2B.
    text = {
      variant: "gemma",
      hiddenSize: 2048,
      intermediateSize: 16384,
      numLayers: 18,
      numHeads: 8,
      numKvHeads: 1,
      headDim: 256,
      vocabSize: topVocab,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      queryPreAttnScalar: 256,
      attnLogitSoftcap: null,
      finalLogitSoftcap: null,
      slidingWindow: null,
      tieWordEmbeddings: json["tie_word_embeddings"] !== false,
    };
  }
  const tf = isObject(textJson) ? new Fields(textJson, `${source}: text_config`) : null;
  const eos = top.has("eos_token_id")
    ? top.ints("eos_token_id", [1])
    : tf?.ints("eos_token_id", [1]) ??
      [1];
  const config: PaliGemmaConfig = {
    version: text.variant === "gemma2" ? 2 : 1,
    vision,
    text,
    projectionDim: top.int("projection_dim", 2048),
    imageTokenIndex: imageTokenIndex(top, source),
    numImageTokens: imageTokensFor(vision),
    padTokenId: top.has("pad_token_id") ? top.int("pad_token_id", 0) : tf?.int("pad_token_id", 0) ??
      0,
    bosTokenId: top.has("bos_token_id") ? top.int("bos_token_id", 2) : tf?.int("bos_token_id", 2) ??
      2,
    eosTokenId: eos[0] ?? 1,
    ...(eos.length > 1 ? { eosTokenIds: eos } : {}),
  };
  checkConfig(config, source);
  return config;
}

/** Throws an InputError when sizes are zero or inconsistent (e.g. heads not dividing the width). */
export function checkConfig(config: PaliGemmaConfig, source: string): void {
  const { vision: v, text: t } = config;
  const positive: [string, number][] = [
    ["vision_config.image_size", v.imageSize],
    ["vision_config.patch_size", v.patchSize],
    ["vision_config.hidden_size", v.hiddenSize],
    ["vision_config.intermediate_size", v.intermediateSize],
    ["vision_config.num_hidden_layers", v.numLayers],
    ["vision_config.num_attention_heads", v.numHeads],
    ["text_config.hidden_size", t.hiddenSize],
    ["text_config.intermediate_size", t.intermediateSize],
    ["text_config.num_hidden_layers", t.numLayers],
    ["text_config.num_attention_heads", t.numHeads],
    ["text_config.num_key_value_heads", t.numKvHeads],
    ["text_config.head_dim", t.headDim],
    ["text_config.vocab_size", t.vocabSize],
    ["projection_dim", config.projectionDim],
  ];
  for (const [key, value] of positive) {
    if (!(value > 0)) throw new InputError(`${source}: ${key} must be positive, got ${value}`);
  }
  if (v.hiddenSize % v.numHeads !== 0) {
    throw new InputError(
      `${source}: vision hidden size ${v.hiddenSize} is not a multiple of ${v.numHeads} heads`,
    );
  }
  if (t.numHeads % t.numKvHeads !== 0) {
    throw new InputError(
      `${source}: ${t.numHeads} query heads are not a multiple of ${t.numKvHeads} key/value heads`,
    );
  }
  if (v.imageSize % v.patchSize !== 0) {
    throw new InputError(
      `${source}: image size ${v.imageSize} is not a multiple of patch size ${v.patchSize}`,
    );
  }
  if (config.projectionDim !== t.hiddenSize) {
    throw new InputError(
      `${source}: projection_dim ${config.projectionDim} differs from the text hidden size ${t.hiddenSize}`,
    );
  }
}

/** An HF-style `config.json` object for a config (legacy layout, as on the hub). */
export function toHfConfigJson(config: PaliGemmaConfig): Record<string, unknown> {
  const { vision: v, text: t } = config;
  const eos = config.eosTokenIds ?? config.eosTokenId;
  const text: Record<string, unknown> = {
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
    hidden_activation: "gelu_pytorch_tanh",
    num_image_tokens: config.numImageTokens,
    tie_word_embeddings: isTied(config),
  };
  if (t.variant === "gemma2") {
    text["query_pre_attn_scalar"] = t.queryPreAttnScalar;
    text["attn_logit_softcapping"] = t.attnLogitSoftcap;
    text["final_logit_softcapping"] = t.finalLogitSoftcap;
    text["sliding_window"] = t.slidingWindow;
    text["cache_implementation"] = "hybrid";
  }
  return {
    architectures: ["PaliGemmaForConditionalGeneration"],
    model_type: "paligemma",
    bos_token_id: config.bosTokenId,
    eos_token_id: eos,
    pad_token_id: config.padTokenId,
    hidden_size: 2048,
    image_token_index: config.imageTokenIndex,
    projection_dim: config.projectionDim,
    vocab_size: t.vocabSize,
    tie_word_embeddings: isTied(config),
    text_config: text,
    vision_config: {
      model_type: "siglip_vision_model",
      image_size: v.imageSize,
      patch_size: v.patchSize,
      hidden_size: v.hiddenSize,
      intermediate_size: v.intermediateSize,
      num_hidden_layers: v.numLayers,
      num_attention_heads: v.numHeads,
      layer_norm_eps: v.layerNormEps,
      num_image_tokens: config.numImageTokens,
      projection_dim: config.projectionDim,
      vision_use_head: false,
      hidden_act: "gelu_pytorch_tanh",
    },
  };
}

/** One line naming the model: version, sizes and resolution. */
export function describeConfig(config: PaliGemmaConfig): string {
  const { vision: v, text: t } = config;
  return `PaliGemma ${config.version}: ${v.imageSize}px SigLIP (${v.numLayers}x${v.hiddenSize}) + ` +
    `${t.variant === "gemma2" ? "Gemma 2" : "Gemma"} (${t.numLayers}x${t.hiddenSize}, ` +
    `${t.numHeads}/${t.numKvHeads} heads x ${t.headDim}), ${config.numImageTokens} image tokens`;
}
