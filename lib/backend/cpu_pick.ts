/**
 * The token choice of `TokenPick` on the CPU, from one row of float32 logits per batch row: the
 * reference semantics every backend follows (the ONNX backend uses it as it is; the WebGPU backend
 * runs greedy on the device and uses it for what its kernels do not cover yet).
 * @module
 */

import type { Rng } from "../generate/rng.ts";
import { pickToken } from "../generate/sampling.ts";
import type { PaliGemmaConfig } from "../model/config.ts";
import type {
  Backend,
  DecodeInput,
  ImageFeatures,
  PickedStep,
  PrefillInput,
  StepOutput,
  TokenPick,
} from "./backend.ts";

/** The largest logit and the softmax denominator exp-summed relative to it (float64). */
function softmaxNorm(row: Float32Array): { max: number; sum: number } {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return { max, sum };
}

/** Sets every logit whose bit is clear in `bits` to -Infinity, in place. */
export function applyBitmask(row: Float32Array, bits: Uint32Array): void {
  for (let i = 0; i < row.length; i++) {
    if (((bits[i >>> 5] >>> (i & 31)) & 1) === 0) row[i] = -Infinity;
  }
}

/** Words of a bitmask over `vocab` ids. */
export function bitmaskWords(vocab: number): number {
  return Math.ceil(vocab / 32);
}

/** A generator that returns one fixed draw (the row's uniform value for this step). */
function fixedDraw(u: number): Rng {
  return { next: () => u };
}

/**
 * Picks one token per row from `logits` [rows, vocab] (the last position of each row) under
 * `pick`; rows are masked in place when `pick.allowed` has a mask for them.
 */
export function pickFromLogits(
  logits: Float32Array,
  rows: number,
  vocab: number,
  pick: TokenPick,
): { tokens: Int32Array; probs: Float64Array | null } {
  if (logits.length < rows * vocab) {
    throw new RangeError(`pick: ${logits.length} logits for ${rows} rows of ${vocab}`);
  }
  const tokens = new Int32Array(rows);
  const probs = pick.withProbs ? new Float64Array(rows) : null;
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    const norm = probs ? softmaxNorm(row) : null;
    const bits = pick.allowed?.[r];
    if (bits) applyBitmask(row, bits);
    const draw = pick.draws ? fixedDraw(pick.draws[r]) : undefined;
    const tok = pickToken(row, pick.sampling, draw);
    tokens[r] = tok;
    if (probs && norm) probs[r] = Math.exp(row[tok] - norm.max) / norm.sum;
  }
  return { tokens, probs };
}

/**
 * A backend whose steps produce logits on the CPU: `prefill` and `decode` are its logits steps
 * followed by `pickFromLogits` (the ONNX backend, and test doubles).
 */
export abstract class CpuPickBackend implements Backend {
  abstract readonly name: string;
  abstract readonly dtype: string;
  abstract readonly config: PaliGemmaConfig;
  abstract readonly vocabSize: number;
  abstract readonly contextLength: number;
  abstract encodeImages(pixelValues: Float32Array, batchSize: number): Promise<ImageFeatures>;
  abstract prefillLogits(input: PrefillInput): Promise<StepOutput>;
  abstract decodeLogits(input: DecodeInput): Promise<StepOutput>;
  abstract release(): Promise<void>;

  /** Prefill keeping only the last position, then the CPU choice. */
  async prefill(input: PrefillInput, pick: TokenPick): Promise<PickedStep> {
    return this.#pick(await this.prefillLogits({ ...input, logitsToKeep: 1 }), pick);
  }

  /** Decode step, then the CPU choice. */
  async decode(input: DecodeInput, pick: TokenPick): Promise<PickedStep> {
    return this.#pick(await this.decodeLogits(input), pick);
  }

  #pick(out: StepOutput, pick: TokenPick): PickedStep {
    const b = out.cache.batchSize;
    const { tokens, probs } = pickFromLogits(out.logits, b, this.vocabSize, pick);
    return { tokens, probs, cache: out.cache };
  }
}
