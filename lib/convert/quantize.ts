/**
 * Symmetric block quantisation of weight rows: the MatMulNBits layout of ONNX Runtime
 * (`B` [N, blocks, blockSize * bits / 8], one float scale per block, implicit zero point
 * 2^(bits-1)) and a per-row-block layout for quantised embedding tables.
 * @module
 */

/** Bits per weight of a quantised layout. */
export type QuantBits = 4 | 8;

/** Quantised rows: packed codes and one scale per block. */
export interface QuantizedRows {
  /** Packed unsigned codes, [rows, blocks, blockSize * bits / 8]. */
  readonly codes: Uint8Array;
  /** Scales, [rows, blocks]. */
  readonly scales: Float32Array;
}

/** Number of blocks of `blockSize` covering `k` columns (the last one zero-padded). */
export function blockCount(k: number, blockSize: number): number {
  return Math.ceil(k / blockSize);
}

/**
 * Quantises `data` ([rows, k], row-major) in blocks of `blockSize` along each row: code =
 * clamp(round(x / scale), -2^(bits-1), 2^(bits-1) - 1) + 2^(bits-1), scale from `bestScale`. 4-bit codes are packed two per
 * byte, the even column in the low nibble.
 */
export function quantizeRows(
  data: Float32Array,
  rows: number,
  k: number,
  bits: QuantBits,
  blockSize: number,
): QuantizedRows {
  const blocks = blockCount(k, blockSize);
  const blob = (blockSize * bits) / 8;
  const codes = new Uint8Array(rows * blocks * blob);
  const scales = new Float32Array(rows * blocks);
  const zero = 1 << (bits - 1);
  const qmax = zero - 1;
  const block = new Int32Array(blockSize);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const start = r * k + b * blockSize;
      const len = Math.min(blockSize, k - b * blockSize);
      let amax = 0;
      for (let i = 0; i < len; i++) amax = Math.max(amax, Math.abs(data[start + i]));
      const scale = bestScale(data, start, len, amax, qmax);
      scales[r * blocks + b] = scale;
      const inv = scale === 0 ? 0 : 1 / scale;
      block.fill(zero);
      for (let i = 0; i < len; i++) {
        const q = Math.round(data[start + i] * inv);
        block[i] = Math.max(-zero, Math.min(qmax, q)) + zero;
      }
      const out = (r * blocks + b) * blob;
      if (bits === 8) {
        for (let i = 0; i < blockSize; i++) codes[out + i] = block[i];
      } else {
        for (let i = 0; i < blob; i++) codes[out + i] = block[2 * i] | (block[2 * i + 1] << 4);
      }
    }
  }
  return { codes, scales };
}

/** Divisors of max|x| tried for 4-bit scales (codes run from -8 to 7). */
const SCALE_DIVISORS_4 = [7, 7.5, 8, 8.5, 9, 10];

/**
 * The scale of one block: max|x| / qmax for 8 bits; for 4 bits the candidate from
 * SCALE_DIVISORS_4 with the least squared rounding error (clipping allowed).
 */
function bestScale(data: Float32Array, start: number, len: number, amax: number, qmax: number) {
  if (amax === 0) return 0;
  if (qmax !== 7) return Math.fround(amax / qmax);
  let best = 0;
  let bestErr = Infinity;
  for (const div of SCALE_DIVISORS_4) {
    const s = Math.fround(amax / div);
    let err = 0;
    for (let i = 0; i < len; i++) {
      const x = data[start + i];
      const q = Math.max(-8, Math.min(7, Math.round(x / s)));
      err += (x - q * s) ** 2;
    }
    if (err < bestErr) {
      bestErr = err;
      best = s;
    }
  }
  return best;
}

/** Reverses `quantizeRows` (for tests and reference computations). */
export function dequantizeRows(
  q: QuantizedRows,
  rows: number,
  k: number,
  bits: QuantBits,
  blockSize: number,
): Float32Array {
  const blocks = blockCount(k, blockSize);
  const blob = (blockSize * bits) / 8;
  const zero = 1 << (bits - 1);
  const out = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < k; c++) {
      const b = Math.floor(c / blockSize);
      const i = c % blockSize;
      const base = (r * blocks + b) * blob;
      const code = bits === 8
        ? q.codes[base + i]
        : (q.codes[base + (i >> 1)] >> ((i & 1) * 4)) & 15;
      out[r * k + c] = (code - zero) * q.scales[r * blocks + b];
    }
  }
  return out;
}
