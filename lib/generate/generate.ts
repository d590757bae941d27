/**
 * The generation loop: one prefill over a left-padded prompt batch, then one decode step per new
 * token for every row, until each row has produced an end-of-sequence id or `maxTokens` tokens.
 * @module
 */

import type { Backend, ImageFeatures, PickedStep, TokenPick } from "../backend/backend.ts";
import type { PromptBatch } from "../prompt/batch.ts";
import type { Rng } from "./rng.ts";
import { GREEDY, isSampling, type SamplingOptions } from "./sampling.ts";

/** Options of `generate`. */
export interface GenerateOptions {
  /** Most new tokens per row (the end-of-sequence token counts). */
  readonly maxTokens: number;
  /** Ids that end a row; empty to always run `maxTokens` steps. */
  readonly eosIds: readonly number[];
  /** Id fed to rows that have finished while others go on. */
  readonly padId: number;
  /** Token choice (default greedy). */
  readonly sampling?: SamplingOptions;
  /** One generator per row, needed when sampling. */
  readonly rngs?: readonly Rng[];
  /** Called with each new token of each row, in order, as soon as it is chosen. */
  readonly onToken?: (row: number, token: number) => void;
  /**
   * The tokens one row may take next (constrained decoding), as a bitmask over the vocabulary
   * (bit `id % 32` of word `id >> 5`, `vocab` ids), or null where the row is free; `generated` is
   * the row's tokens so far.
   */
  readonly constrain?: (
    row: number,
    generated: readonly number[],
    vocab: number,
  ) => Uint32Array | null;
  /** Record each new token's probability (softmax at temperature 1, before `constrain`). */
  readonly withProbs?: boolean;
}

/** Why a row stopped. */
export type StopReason = "eos" | "max_tokens";

/** What `generate` produced. */
export interface GenerateResult {
  /** New tokens of each row, without the end-of-sequence id. */
  readonly tokens: number[][];
  /** Why each row stopped. */
  readonly stop: StopReason[];
  /** Milliseconds in the prefill (including the first token's choice). */
  readonly prefillMs: number;
  /** Milliseconds in the decode steps. */
  readonly decodeMs: number;
  /** Decode steps run (one per token after the first). */
  readonly steps: number;
  /** Per row, the probability of each token of `tokens` (empty unless `withProbs`). */
  readonly probs: number[][];
}

/**
 * Generates text for `batch` with `image` features written over its `<image>` tokens (one image
 * per row). Rows are independent: a row's tokens do not depend on the others in the batch.
 */
export async function generate(
  backend: Backend,
  batch: PromptBatch,
  image: ImageFeatures | null,
  opts: GenerateOptions,
): Promise<GenerateResult> {
  const sampling = opts.sampling ?? GREEDY;
  const b = batch.batchSize;
  const v = backend.vocabSize;
  if (isSampling(sampling) && (opts.rngs?.length ?? 0) < b) {
    throw new TypeError("generate: sampling needs one Rng per row");
  }
  const eos = new Set(opts.eosIds);
  const tokens: number[][] = Array.from({ length: b }, () => []);
  const probs: number[][] = Array.from({ length: b }, () => []);
  const stop: StopReason[] = new Array(b).fill("max_tokens");
  const done = new Array<boolean>(b).fill(false);
  if (opts.maxTokens <= 0 || b === 0) {
    return { tokens, stop, prefillMs: 0, decodeMs: 0, steps: 0, probs };
  }

  /** What the backend is asked to pick for each row: the live rows' draws and masks. */
  const request = (): TokenPick => {
    const sampled = isSampling(sampling);
    const draws = sampled ? new Float64Array(b) : undefined;
    const allowed = opts.constrain ? new Array<Uint32Array | null>(b).fill(null) : undefined;
    for (let r = 0; r < b; r++) {
      if (done[r]) continue;
      if (draws) draws[r] = opts.rngs![r].next();
      if (allowed) allowed[r] = opts.constrain!(r, tokens[r], v);
    }
    return { sampling, draws, allowed, withProbs: opts.withProbs };
  };

  /** Takes each live row's picked token; returns the ids to feed next. */
  const take = (step: PickedStep): Int32Array => {
    const next = new Int32Array(b).fill(opts.padId);
    for (let r = 0; r < b; r++) {
      if (done[r]) continue;
      const tok = step.tokens[r];
      next[r] = tok;
      if (eos.has(tok)) {
        done[r] = true;
        stop[r] = "eos";
        continue;
      }
      tokens[r].push(tok);
      if (step.probs) probs[r].push(step.probs[r]);
      opts.onToken?.(r, tok);
      if (tokens[r].length >= opts.maxTokens) done[r] = true;
    }
    return next;
  };

  const t0 = performance.now();
  let out = await backend.prefill({
    batchSize: b,
    length: batch.length,
    inputIds: batch.inputIds,
    attentionMask: batch.attentionMask,
    positionIds: batch.positionIds,
    image,
    logitsToKeep: 1,
    reserve: opts.maxTokens,
  }, request());
  let next = take(out);
  const t1 = performance.now();

  // Left padding puts every row's last real token at the end, so its position is the row's last.
  const n = batch.length;
  const positions = new Int32Array(b);
  for (let r = 0; r < b; r++) positions[r] = batch.positionIds[r * n + n - 1];
  let mask = batch.attentionMask;
  let steps = 0;
  while (!done.every(Boolean)) {
    const len = out.cache.length;
    const grown = new Int32Array(b * (len + 1));
    for (let r = 0; r < b; r++) {
      grown.set(mask.subarray(r * len, (r + 1) * len), r * (len + 1));
      grown[r * (len + 1) + len] = 1;
      positions[r]++;
    }
    mask = grown;
    out = await backend.decode({
      cache: out.cache,
      tokens: next,
      positionIds: positions,
      attentionMask: mask,
    }, request());
    steps++;
    next = take(out);
  }
  return { tokens, stop, prefillMs: t1 - t0, decodeMs: performance.now() - t1, steps, probs };
}
