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
  /** u32 [rows] picked ids. */
  readonly ids: GpuTensor;
  /** f32 [rows] temperature-1 probability of each picked id (before the mask). */
  readonly probs: GpuTensor;
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
  if (x.ids.length < x.rows || x.probs.length < x.rows) {
    throw new RangeError("pickGreedy: output buffers too small");
  }
  const p = new ParamWriter().u32(x.rows).u32(x.n).u32(x.bits ? 1 : 0).u32(words);
  await r.dispatch("pick_greedy", [x.x, x.bits ?? r.dummy, x.ids, x.probs], p, grid(x.rows));
}
