/**
 * The prefix-LM attention mask: every token may attend to all real image/prefix tokens (full
 * attention over the prefix), suffix tokens also attend causally to the suffix up to themselves.
 * Equivalent to big_vision's `make_attn_mask` with `mask_ar` = token types, and to HF's training
 * mask (causal, then token-type-0 key columns un-masked, padding key columns masked).
 * @module
 */
import type { PromptBatch } from "./batch.ts";

/** float32's most negative finite value, which HF uses (`finfo(float32).min`) for masked logits. */
export const FLOAT32_MIN = -3.4028234663852886e38;

/**
 * L×L row-major boolean mask (1 = query row i may attend to key column j) for one sequence.
 * `keyMask` (1 = real token) masks padding columns; rows of padding keep their pattern, as in HF,
 * so no row is empty.
 */
export function prefixLmMask(
  tokenTypeIds: ArrayLike<number>,
  keyMask?: ArrayLike<number>,
): Uint8Array {
  const n = tokenTypeIds.length;
  // Block index: 0 for the prefix; the k-th suffix token (1-based) is block k.
  const block = new Int32Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (tokenTypeIds[i] !== 0) count++;
    block[i] = tokenTypeIds[i] !== 0 ? count : 0;
  }
  const out = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const real = keyMask === undefined || keyMask[j] !== 0;
      out[i * n + j] = real && block[j] <= block[i] ? 1 : 0;
    }
  }
  return out;
}

/** B×L×L prefix-LM masks of a left-padded batch. */
export function batchPrefixLmMask(batch: PromptBatch): Uint8Array {
  const { batchSize: b, length: n } = batch;
  const out = new Uint8Array(b * n * n);
  for (let r = 0; r < b; r++) {
    const row = (a: Int32Array) => a.subarray(r * n, (r + 1) * n);
    out.set(prefixLmMask(row(batch.tokenTypeIds), row(batch.attentionMask)), r * n * n);
  }
  return out;
}

/** Turns a boolean mask into an additive one: 0 where allowed, `negative` where masked. */
export function additiveMask(allowed: Uint8Array, negative: number = FLOAT32_MIN): Float32Array {
  const out = new Float32Array(allowed.length);
  for (let i = 0; i < allowed.length; i++) out[i] = allowed[i] ? 0 : negative;
  return out;
}
