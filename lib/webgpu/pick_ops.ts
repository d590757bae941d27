/**
 * Dispatch helper of the device-side token choice (kernels/pick_greedy.wgsl).
 * @module
 */

import { type GpuRunner, type GpuTensor, grid, ParamWriter } from "./runner.ts";

/** Arguments of `pickGreedy`. */
export interface PickGreedyArgs {
  /** [rows, n] logits. */
  readonly x: GpuTensor;
  /** u32 [rows, ceil(n / 32)] allowed-token bitmasks, or undefined for no mask. */
  readonly bits?: GpuTensor;
  /**
   * [2 · rows] output: u32 picked ids, then the f32 bits of each one's temperature-1 probability
   * (before the mask); `splitPicks` separates what `readU32` returns.
   */
  readonly out: GpuTensor;
  /** Rows. */
  readonly rows: number;
  /** Row width (the vocabulary). */
  readonly n: number;
}

/** Records the masked greedy choice and its probability for each row. */
export async function pickGreedy(r: GpuRunner, x: PickGreedyArgs): Promise<void> {
  const words = Math.ceil(x.n / 32);
  if (x.rows < 1 || x.n < 1) throw new RangeError("pickGreedy: empty logits");
  if (x.x.length < x.rows * x.n) throw new RangeError("pickGreedy: logits buffer too small");
  if (x.bits && x.bits.length < x.rows * words) throw new RangeError("pickGreedy: mask too small");
  if (x.out.length < 2 * x.rows) throw new RangeError("pickGreedy: output buffer too small");
  const p = new ParamWriter().u32(x.rows).u32(x.n).u32(x.bits ? 1 : 0).u32(words);
  await r.dispatch("pick_greedy", [x.x, x.bits ?? r.dummy, x.out], p, grid(x.rows));
}

/** The ids and probabilities in the `out` words of `pickGreedy` for `rows` rows. */
export function splitPicks(
  words: Uint32Array,
  rows: number,
): { ids: Int32Array; probs: Float32Array } {
  const ids = Int32Array.from(words.subarray(0, rows));
  const probs = new Float32Array(words.slice(rows, 2 * rows).buffer);
  return { ids, probs };
}
