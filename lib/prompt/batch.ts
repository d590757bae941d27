/**
 * Left-padded batches of prompts, as HF's tokenizer pads them with `padding_side="left"`.
 * @module
 */
import type { PromptInput } from "./build.ts";

/** B sequences padded on the left to a common length L; every array is row-major B×L. */
export interface PromptBatch {
  /** Number of sequences. */
  readonly batchSize: number;
  /** Common (longest) length. */
  readonly length: number;
  /** Ids, with the pad id on the left of shorter rows. */
  readonly inputIds: Int32Array;
  /** 1 on real tokens, 0 on padding. */
  readonly attentionMask: Int32Array;
  /** Token types; 0 on padding. */
  readonly tokenTypeIds: Int32Array;
  /**
   * 1-based positions counted over real tokens only (`cumsum(mask) * mask`), so every row starts
   * at 1 at its first real token and padding holds 0.
   */
  readonly positionIds: Int32Array;
}

/** Pads `rows` on the left with `padId` to the longest row. */
export function batchPrompts(rows: readonly PromptInput[], padId: number): PromptBatch {
  const batchSize = rows.length;
  const length = Math.max(0, ...rows.map((r) => r.inputIds.length));
  const size = batchSize * length;
  const inputIds = new Int32Array(size).fill(padId);
  const attentionMask = new Int32Array(size);
  const tokenTypeIds = new Int32Array(size);
  const positionIds = new Int32Array(size);
  rows.forEach((r, b) => {
    const start = b * length + length - r.inputIds.length;
    inputIds.set(r.inputIds, start);
    tokenTypeIds.set(r.tokenTypeIds, start);
    for (let i = 0; i < r.inputIds.length; i++) {
      attentionMask[start + i] = 1;
      positionIds[start + i] = i + 1;
    }
  });
  return { batchSize, length, inputIds, attentionMask, tokenTypeIds, positionIds };
}
