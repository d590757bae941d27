/**
 * The interface every inference backend implements: ONNX Runtime on the CPU (lib/backend/onnx.ts)
 * and WebGPU (lib/backend/webgpu.ts).
 *
 * A backend runs the three parts of PaliGemma and picks each next token: the vision encoder
 * (SigLIP plus projector), a prefill over a whole left-padded prompt batch, and single-token decode
 * steps with a KV cache, each followed by the choice of one token per row (`TokenPick`: greedy or
 * seeded sampling, an optional grammar bitmask, optional probabilities), so a device backend only
 * sends token ids back. Prompt assembly, the uniform draws of the seeded generators and stopping
 * live in `lib/generate`; the choice itself follows lib/generate/sampling.ts exactly
 * (lib/backend/cpu_pick.ts is that choice on the CPU).
 *
 * Semantics a backend must follow (the converted ONNX decoder implements exactly these):
 * - Prefill is prefix-LM: the tokens of one prefill attend to each other in both directions, and
 *   key positions whose attention mask is 0 (left padding) never contribute.
 * - Decode steps are causal: the new token attends to the whole cache and to itself.
 * - Position ids are 1-based over real tokens (HF PaliGemma); padding positions hold 0.
 * - Image features replace the `<image>` tokens of each row, in order; row b uses image b.
 * - Logits are float32 and only for the last `logitsToKeep` positions (1 during generation).
 * @module
 */

import type { SamplingOptions } from "../generate/sampling.ts";
import type { PaliGemmaConfig } from "../model/config.ts";
import type { GpuRunner } from "../webgpu/runner.ts";

/** Projected image features, one image per batch row, in the decoder's embedding space. */
export interface ImageFeatures {
  /** Number of images. */
  readonly batchSize: number;
  /** Feature vectors per image (the model's number of image tokens). */
  readonly tokens: number;
  /** Width of one vector (the decoder's hidden size). */
  readonly dim: number;
  /** Row-major [batchSize, tokens, dim] float32 values. */
  readonly data: Float32Array;
}

/**
 * A backend's key/value cache for one batch. It is opaque outside the backend that made it and is
 * consumed by `decode`: after a decode step only the returned cache may be used.
 */
export interface KvCache {
  /** Rows in the batch. */
  readonly batchSize: number;
  /** Positions held (prompt length plus the tokens decoded so far, padding included). */
  readonly length: number;
}

/** A left-padded prompt batch for `prefill`; every array is row-major [batchSize, length]. */
export interface PrefillInput {
  /** Rows. */
  readonly batchSize: number;
  /** Common padded length. */
  readonly length: number;
  /** Token ids (image tokens, `<bos>`, prompt, `"\n"`), the pad id on the left of short rows. */
  readonly inputIds: Int32Array;
  /** 1 on real tokens, 0 on padding. */
  readonly attentionMask: Int32Array;
  /** 1-based positions over real tokens, 0 on padding. */
  readonly positionIds: Int32Array;
  /** Features written over the `<image>` tokens, or null for a text-only prompt. */
  readonly image: ImageFeatures | null;
  /** Positions at the end of each row to return logits for (default 1; 0 means all). */
  readonly logitsToKeep?: number;
  /** Decode steps expected after the prefill (sizes a preallocated cache; a hint only). */
  readonly reserve?: number;
}

/** One decode step for every row of a batch. */
export interface DecodeInput {
  /** The cache returned by the previous prefill or decode step (consumed). */
  readonly cache: KvCache;
  /** One new token per row ([batchSize]). */
  readonly tokens: Int32Array;
  /** Position of each new token ([batchSize]). */
  readonly positionIds: Int32Array;
  /** Mask over cache plus the new token, row-major [batchSize, cache.length + 1]. */
  readonly attentionMask: Int32Array;
}

/**
 * How to pick the next token of every row after a prefill or decode step, from the last position's
 * logits. Semantics (lib/backend/cpu_pick.ts is the reference): probabilities are the softmax at
 * temperature 1 of the unmasked logits; then the logits outside `allowed` become -Infinity; then
 * greedy takes the argmax (first on ties), sampling applies temperature, top-k and top-p as
 * `pickToken` does and inverts the row's uniform `draws` value.
 */
export interface TokenPick {
  /** Greedy or sampling settings. */
  readonly sampling: SamplingOptions;
  /** One uniform [0, 1) draw per row from the row's seeded generator (when sampling). */
  readonly draws?: Float64Array;
  /**
   * Per row, a bitmask of the tokens allowed next (bit `id % 32` of word `id >> 5`), or null for
   * every token; absent for no constraint at all.
   */
  readonly allowed?: readonly (Uint32Array | null)[];
  /** Return each picked token's probability (softmax at temperature 1, before `allowed`). */
  readonly withProbs?: boolean;
}

/** The tokens picked after one step and the cache to continue from. */
export interface PickedStep {
  /** One token id per row. */
  readonly tokens: Int32Array;
  /** Probability of each picked token (only when `TokenPick.withProbs`). */
  readonly probs: Float64Array | null;
  /** The cache to pass to the next decode step. */
  readonly cache: KvCache;
}

/** Output of a prefill or a decode step that returns logits (parity tests, benchmarks). */
export interface StepOutput {
  /** Float32 logits, row-major [batchSize, kept, vocabSize]. */
  readonly logits: Float32Array;
  /** Positions kept per row (1 during generation). */
  readonly kept: number;
  /** The cache to pass to the next decode step. */
  readonly cache: KvCache;
}

/** A loaded model that can encode images, prefill prompts and decode tokens. */
export interface Backend {
  /** Short name for logs, e.g. `onnx (q8, 2 threads)`. */
  readonly name: string;
  /** Weight precision in use, e.g. `q8` or `fp32`. */
  readonly dtype: string;
  /** The WebGPU device the model runs on, if any (other models, e.g. the VQ-VAE, share it). */
  readonly gpu?: GpuRunner;
  /** The model configuration. */
  readonly config: PaliGemmaConfig;
  /** Width of one row of logits. */
  readonly vocabSize: number;
  /** Most positions one sequence may hold: prompt plus generated tokens. */
  readonly contextLength: number;
  /** Runs the vision encoder on `batchSize` CHW float32 images of the model's square size. */
  encodeImages(pixelValues: Float32Array, batchSize: number): Promise<ImageFeatures>;
  /** Runs the decoder over a whole prompt batch with an empty cache and picks each row's token. */
  prefill(input: PrefillInput, pick: TokenPick): Promise<PickedStep>;
  /** Runs the decoder on one new token per row and picks each row's next token. */
  decode(input: DecodeInput, pick: TokenPick): Promise<PickedStep>;
  /** `prefill` returning the logits of the last `logitsToKeep` positions instead of a pick. */
  prefillLogits(input: PrefillInput): Promise<StepOutput>;
  /** `decode` returning the logits instead of a pick. */
  decodeLogits(input: DecodeInput): Promise<StepOutput>;
  /** Frees the model; the backend must not be used afterwards. */
  release(): Promise<void>;
}
