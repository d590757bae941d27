/**
 * Block quantisation of weight rows in the MatMulNBits layout of ONNX Runtime (`B` [N, blocks,
 * blockSize * bits / 8], one float scale per block, and either the implicit zero point
 * 2^(bits-1) (symmetric) or one stored zero point per block (asymmetric)). The same layout is
 * used for quantised embedding tables. Each block's scale comes from its range: symmetric blocks
 * map the larger magnitude to the end of the code range on its side, asymmetric ones their
 * min/max (0 included) to the whole code range.
 * @module
 */

/** Bits per weight of a quantised layout. */
export type QuantBits = 4 | 8;

/** How one kind of weight is quantised. */
export interface QuantScheme {
  /** Bits per weight. */
  readonly bits: QuantBits;
  /** Weights per block along a row (a power of two, at least 16). */
  readonly blockSize: number;
  /** Stored zero point per block (min/max range) instead of the implicit 2^(bits-1). */
  readonly asymmetric: boolean;
}

/** Quantised rows: packed codes, one scale and (asymmetric only) one zero point per block. */
export interface QuantizedRows {
  /** Packed unsigned codes, [rows, blocks, blockSize * bits / 8]. */
  readonly codes: Uint8Array;
  /** Scales, [rows, blocks]. */
  readonly scales: Float32Array;
  /** Zero points (unpacked, one byte each), [rows, blocks]; absent when symmetric. */
  readonly zeros?: Uint8Array;
}

/** Number of blocks of `blockSize` covering `k` columns (the last one zero-padded). */
export function blockCount(k: number, blockSize: number): number {
  return Math.ceil(k / blockSize);
}

/** Scale and zero point of one block under `s` (the zero point is 2^(bits-1) when symmetric). */
function blockParams(
  x: Float32Array,
  start: number,
  len: number,
  s: QuantScheme,
): [number, number] {
  const top = (1 << s.bits) - 1;
  const mid = 1 << (s.bits - 1);
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < len; i++) {
    const v = x[start + i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === 0 && hi === 0) return [0, s.asymmetric ? 0 : mid];
  if (s.asymmetric) {
    const scale = Math.fround((hi - lo) / top);
    return [scale, Math.max(0, Math.min(top, Math.round(-lo / scale)))];
  }
  // The larger magnitude maps to the end of the code range on its side (-2^(b-1) or 2^(b-1)-1).
  return [Math.fround(-lo > hi ? -lo / mid : hi / (mid - 1)), mid];
}

/**
 * Quantises `data` ([rows, k], row-major) in blocks along each row: code = clamp(round(x / scale)
 * + zero, 0, 2^bits - 1). 4-bit codes are packed two per byte, the even column in the low nibble.
 */
export function quantizeRows(
  data: Float32Array,
  rows: number,
  k: number,
  s: QuantScheme,
): QuantizedRows {
  const { bits, blockSize } = s;
  const blocks = blockCount(k, blockSize);
  const blob = (blockSize * bits) / 8;
  const codes = new Uint8Array(rows * blocks * blob);
  const scales = new Float32Array(rows * blocks);
  const zeros = s.asymmetric ? new Uint8Array(rows * blocks) : undefined;
  const top = (1 << bits) - 1;
  const block = new Uint8Array(blockSize);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const start = r * k + b * blockSize;
      const len = Math.min(blockSize, k - b * blockSize);
      const [scale, zero] = blockParams(data, start, len, s);
      scales[r * blocks + b] = scale;
      if (zeros) zeros[r * blocks + b] = zero;
      const inv = scale === 0 ? 0 : 1 / scale;
      block.fill(zero);
      for (let i = 0; i < len; i++) {
        const q = Math.round(data[start + i] * inv) + zero;
        block[i] = q < 0 ? 0 : q > top ? top : q;
      }
      const out = (r * blocks + b) * blob;
      if (bits === 8) {
        codes.set(block, out);
      } else {
        for (let i = 0; i < blob; i++) codes[out + i] = block[2 * i] | (block[2 * i + 1] << 4);
      }
    }
  }
  return zeros ? { codes, scales, zeros } : { codes, scales };
}

/**
 * Zero points in MatMulNBits' `zero_points` layout: [rows, blocks] bytes for 8 bits; for 4 bits
 * each row packed two per byte (even block in the low nibble), rows padded to whole bytes.
 */
export function packZeroPoints(zeros: Uint8Array, rows: number, blocks: number, bits: QuantBits) {
  if (bits === 8) return zeros;
  const per = Math.ceil(blocks / 2);
  const out = new Uint8Array(rows * per);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      out[r * per + (b >> 1)] |= zeros[r * blocks + b] << ((b & 1) * 4);
    }
  }
  return out;
}

/** Reverses `quantizeRows` (for tests and reference computations). */
export function dequantizeRows(
  q: QuantizedRows,
  rows: number,
  k: number,
  s: QuantScheme,
): Float32Array {
  const { bits, blockSize } = s;
  const blocks = blockCount(k, blockSize);
  const blob = (blockSize * bits) / 8;
  const mid = 1 << (bits - 1);
  const out = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < k; c++) {
      const b = Math.floor(c / blockSize);
      const i = c % blockSize;
      const base = (r * blocks + b) * blob;
      const code = bits === 8
        ? q.codes[base + i]
        : (q.codes[base + (i >> 1)] >> ((i & 1) * 4)) & 15;
      const zero = q.zeros ? q.zeros[r * blocks + b] : mid;
      out[r * k + c] = (code - zero) * q.scales[r * blocks + b];
    }
  }
  return out;
}
