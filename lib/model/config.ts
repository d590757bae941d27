/**
 * The model configuration every part of the library shares. Readers (HF config.json, big_vision
 * shape inference, presets) produce it; graph builders and backends consume it.
 * @module
 */

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
  /** End-of-sequence id(s). */
  readonly eosTokenId: number;
}
