/**
 * Test helper, not product code: published PaliGemma configurations (model-reference section 2)
 * and tiny ones for tests.
 * Presets describe the HF checkpoints (embedding padded to 257216 rows); `bigVisionVocab` gives
 * the unpadded big_vision table of 257152 rows.
 * @module
 */

import {
  imageTokensFor,
  type PaliGemmaConfig,
  type TextConfig,
  type VisionConfig,
} from "../../lib/model/config.ts";

/** Rows of the big_vision embedding table: 256000 + 1024 loc + 128 seg tokens. */
export const BIG_VISION_VOCAB = 257152;
/** Rows of the HF embedding table (257152 + 2 padded to a multiple of 64). */
export const HF_VOCAB = 257216;
/** Id of `<image>` in HF checkpoints. */
export const IMAGE_TOKEN_INDEX = 257152;

/** Names of the published presets, e.g. `pg1-3b-224`, `pg2-28b-896`. */
export type PresetName =
  | `pg1-3b-${224 | 448 | 896}`
  | `pg2-${"3b" | "10b" | "28b"}-${224 | 448 | 896}`;

/** SigLIP So400m/14 at a resolution. */
function so400m(imageSize: number): VisionConfig {
  return {
    imageSize,
    patchSize: 14,
    hiddenSize: 1152,
    intermediateSize: 4304,
    numLayers: 27,
    numHeads: 16,
    layerNormEps: 1e-6,
  };
}

const gemma2Common = {
  variant: "gemma2",
  vocabSize: HF_VOCAB,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  attnLogitSoftcap: 50,
  finalLogitSoftcap: 30,
  slidingWindow: 4096,
  tieWordEmbeddings: true,
} as const;

const TEXT: Record<"pg1-3b" | "pg2-3b" | "pg2-10b" | "pg2-28b", TextConfig> = {
  "pg1-3b": {
    variant: "gemma",
    hiddenSize: 2048,
    intermediateSize: 16384,
    numLayers: 18,
    numHeads: 8,
    numKvHeads: 1,
    headDim: 256,
    vocabSize: HF_VOCAB,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    queryPreAttnScalar: 256,
    attnLogitSoftcap: null,
    finalLogitSoftcap: null,
    slidingWindow: null,
    tieWordEmbeddings: true,
  },
  "pg2-3b": {
    ...gemma2Common,
    hiddenSize: 2304,
    intermediateSize: 9216,
    numLayers: 26,
    numHeads: 8,
    numKvHeads: 4,
    headDim: 256,
    queryPreAttnScalar: 256,
  },
  "pg2-10b": {
    ...gemma2Common,
    hiddenSize: 3584,
    intermediateSize: 14336,
    numLayers: 42,
    numHeads: 16,
    numKvHeads: 8,
    headDim: 256,
    queryPreAttnScalar: 256,
  },
  "pg2-28b": {
    ...gemma2Common,
    hiddenSize: 4608,
    intermediateSize: 36864,
    numLayers: 46,
    numHeads: 32,
    numKvHeads: 16,
    headDim: 128,
    queryPreAttnScalar: 144,
  },
};

/** Every preset name. */
export const PRESET_NAMES: readonly PresetName[] = [
  "pg1-3b-224",
  "pg1-3b-448",
  "pg1-3b-896",
  ...(["3b", "10b", "28b"] as const).flatMap((s) =>
    ([224, 448, 896] as const).map((r) => `pg2-${s}-${r}` as PresetName)
  ),
];

/** Assembles a whole config from its parts, deriving the image-token count. */
export function makeConfig(
  vision: VisionConfig,
  text: TextConfig,
  ids: Partial<Pick<PaliGemmaConfig, "imageTokenIndex" | "eosTokenIds">> = {},
): PaliGemmaConfig {
  return {
    version: text.variant === "gemma2" ? 2 : 1,
    vision,
    text,
    projectionDim: text.hiddenSize,
    imageTokenIndex: ids.imageTokenIndex ?? IMAGE_TOKEN_INDEX,
    numImageTokens: imageTokensFor(vision),
    padTokenId: 0,
    bosTokenId: 2,
    eosTokenId: ids.eosTokenIds?.[0] ?? 1,
    ...(ids.eosTokenIds && ids.eosTokenIds.length > 1 ? { eosTokenIds: ids.eosTokenIds } : {}),
  };
}

/** The published config called `name` (HF layout: 257216 embedding rows). */
export function preset(name: PresetName): PaliGemmaConfig {
  const m = /^(pg[12]-\d+b)-(\d+)$/.exec(name);
  const text = m ? TEXT[m[1] as keyof typeof TEXT] : undefined;
  if (!m || !text) throw new RangeError(`unknown preset '${name}'`);
  return makeConfig(so400m(Number(m[2])), text, {
    eosTokenIds: text.variant === "gemma2" ? [1, 107] : [1],
  });
}

/** The same config with big_vision's unpadded 257152-row embedding table. */
export function bigVisionVocab(config: PaliGemmaConfig): PaliGemmaConfig {
  return { ...config, text: { ...config.text, vocabSize: BIG_VISION_VOCAB } };
}

/** Options of `tinyConfig`. */
export interface TinyOptions {
  /** Image size in pixels (default 28, with 7 px patches: 16 image tokens). */
  readonly imageSize?: number;
  /** Embedding rows (default 64). */
  readonly vocabSize?: number;
  /** Untied LM head (HF layout only; default tied). */
  readonly untied?: boolean;
}

/**
 * A tiny PaliGemma 1 or 2 for tests: every width distinct and heads x head_dim != hidden, so a
 * wrong transpose or reshape changes shapes or values. The image token is the last id + 1 (the
 * rule big_vision config inference uses).
 */
export function tinyConfig(version: 1 | 2, opts: TinyOptions = {}): PaliGemmaConfig {
  const vocabSize = opts.vocabSize ?? 64;
  const vision: VisionConfig = {
    imageSize: opts.imageSize ?? 28,
    patchSize: 7,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 2,
    layerNormEps: 1e-6,
  };
  const common = {
    vocabSize,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: !opts.untied,
  };
  const text: TextConfig = version === 1
    ? {
      ...common,
      variant: "gemma",
      hiddenSize: 32,
      intermediateSize: 40,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 1,
      headDim: 6,
      queryPreAttnScalar: 6,
      attnLogitSoftcap: null,
      finalLogitSoftcap: null,
      slidingWindow: null,
    }
    : {
      ...common,
      variant: "gemma2",
      hiddenSize: 20,
      intermediateSize: 36,
      numLayers: 3,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 6,
      queryPreAttnScalar: 6,
      attnLogitSoftcap: 50,
      finalLogitSoftcap: 30,
      slidingWindow: 4096,
    };
  return makeConfig(vision, text, { imageTokenIndex: vocabSize });
}
