/**
 * Activation-aware scaling of a quantised MLP's inputs without calibration data (after AWQ).
 *
 * Gemma's MLP reads `n(x) * (1 + w)`, where `n(x)` is the RMS-normalised hidden state and `w` the
 * norm weight, so channel j of the input has a second moment of about (1 + w_j)². Multiplying
 * column j of gate and up by s_j and dividing the norm's scale by s_j leaves the float model as
 * it is, but gives the channels the norm amplifies finer quantisation steps. With
 * s_j = |1 + w_j|^α (geometric mean 1), α is chosen per layer among candidates to minimise the
 * expected output error of gate and up, Σ_j (1 + w_j)² Σ_i (W_ij - Q_ij)², where Q is W quantised
 * after scaling and scaled back; α = 0 (no scaling) is always a candidate. Matrices with more
 * than 4096 rows are judged on every ⌈rows / 4096⌉-th row.
 * @module
 */

import { dequantizeRows, quantizeRows, type QuantScheme } from "./quantize.ts";
import type { F32Tensor } from "./source.ts";

/** Scales |1 + w_j|^alpha of the norm weight `w`, normalised to geometric mean 1. */
export function mlpInputScales(w: Float32Array, alpha: number): Float32Array {
  const s = new Float32Array(w.length);
  let logSum = 0;
  for (let j = 0; j < w.length; j++) {
    const a = Math.max(Math.abs(1 + w[j]), 1e-3) ** alpha;
    s[j] = a;
    logSum += Math.log(a);
  }
  const mean = Math.exp(logSum / w.length);
  for (let j = 0; j < w.length; j++) s[j] = Math.fround(s[j] / mean);
  return s;
}

/** `w` [out, in] with column j multiplied by `s[j]`. */
export function scaleColumns(w: F32Tensor, s: Float32Array): F32Tensor {
  const [rows, cols] = w.shape;
  const data = new Float32Array(w.data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) data[r * cols + c] = w.data[r * cols + c] * s[c];
  }
  return { shape: w.shape, data };
}

/** Rows quantised per call, to bound the memory of the dequantised copy. */
const CHUNK_ROWS = 1024;

/** Σ_j a_j² Σ_i (W_ij - Q_ij / s_j)² for `w` scaled by `s`, quantised with `scheme`. */
export function weightedQuantError(
  w: F32Tensor,
  s: Float32Array,
  a2: Float32Array,
  scheme: QuantScheme,
): number {
  const [rows, cols] = w.shape;
  let err = 0;
  for (let r0 = 0; r0 < rows; r0 += CHUNK_ROWS) {
    const n = Math.min(CHUNK_ROWS, rows - r0);
    const part = w.data.subarray(r0 * cols, (r0 + n) * cols);
    const scaled = scaleColumns({ shape: [n, cols], data: part }, s).data;
    const deq = dequantizeRows(quantizeRows(scaled, n, cols, scheme), n, cols, scheme);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < cols; c++) {
        const d = part[r * cols + c] - deq[r * cols + c] / s[c];
        err += a2[c] * d * d;
      }
    }
  }
  return err;
}

/** Rows of a matrix the choice looks at, at most: more are sampled evenly. */
const SAMPLE_ROWS = 4096;

/** `w` itself, or every k-th row of it when it has more than `SAMPLE_ROWS` rows. */
export function sampleRows(w: F32Tensor): F32Tensor {
  const [rows, cols] = w.shape;
  const step = Math.ceil(rows / SAMPLE_ROWS);
  if (step === 1) return w;
  const n = Math.ceil(rows / step);
  const data = new Float32Array(n * cols);
  for (let i = 0; i < n; i++) {
    data.set(w.data.subarray(i * step * cols, (i * step + 1) * cols), i * cols);
  }
  return { shape: [n, cols], data };
}

/** The chosen exponent and its scales (null: no scaling). */
export interface InputScaling {
  /** Exponent α chosen. */
  readonly alpha: number;
  /** s_j, or null when α = 0. */
  readonly scales: Float32Array | null;
}

/** A matrix [out, in] reading the norm's output, with the scheme it is quantised with. */
export interface ScaledMatrix {
  /** The weight, HF layout [out, in]. */
  readonly w: F32Tensor;
  /** Its block quantisation. */
  readonly scheme: QuantScheme;
}

/**
 * Picks α among `alphas` for the quantised matrices `mats` (gate and up, or those of them that are
 * quantised) reading the output of the RMSNorm with weight `normW`.
 */
export function chooseInputScaling(
  normW: Float32Array,
  mats: readonly ScaledMatrix[],
  alphas: readonly number[],
): InputScaling {
  const sampled = mats.map((m) => ({ w: sampleRows(m.w), scheme: m.scheme }));
  const a2 = new Float32Array(normW.length);
  for (let j = 0; j < a2.length; j++) a2[j] = (1 + normW[j]) ** 2;
  let best: InputScaling = { alpha: 0, scales: null };
  if (mats.length === 0) return best;
  let bestErr = Infinity;
  for (const alpha of new Set([0, ...alphas])) {
    const s = mlpInputScales(normW, alpha);
    let err = 0;
    for (const m of sampled) err += weightedQuantError(m.w, s, a2, m.scheme);
    // Scaling must win by more than rounding noise (constant scales are all 1 up to an ulp).
    if (err < bestErr * (1 - 1e-6)) {
      bestErr = err;
      best = { alpha, scales: alpha === 0 ? null : s };
    }
  }
  return best;
}
