/**
 * Bicubic resampling of 8-bit RGB images that reproduces Pillow's `Image.resize(size, BICUBIC)`:
 * a separable convolution (horizontal pass, then vertical pass) with the a = -0.5 cubic kernel,
 * support widened by the downscale factor (antialias), coefficients normalised to sum 1 and then
 * converted to 22-bit fixed point, accumulation in integers with rounding, and clipping to uint8
 * after each pass. Written from the algorithm's description, not from Pillow's code.
 * @module
 */

/** Fixed-point fraction bits of the coefficients (32 bits minus 8 for the sample minus 2 spare). */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Kernel half-width of the bicubic filter, in source pixels at scale 1. */
const BICUBIC_SUPPORT = 2;

/** The cubic convolution kernel with a = -0.5 (Keys), evaluated as Pillow writes it. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Per-output-sample window of source samples and its fixed-point weights. */
interface Coefficients {
  /** Weights per output sample: `ksize` slots, the first `count[i]` used. */
  readonly weights: Int32Array;
  /** First source sample of each output sample. */
  readonly start: Int32Array;
  /** Number of source samples of each output sample. */
  readonly count: Int32Array;
  /** Slots per output sample in `weights`. */
  readonly ksize: number;
}

/** Computes the fixed-point weights that map `inSize` samples onto `outSize` samples. */
function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const weights = new Int32Array(outSize * ksize);
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const inv = 1 / filterScale;
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubic((x + xmin - center + 0.5) * inv);
      k[x] = w;
      sum += w;
    }
    const base = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const w = sum !== 0 ? k[x] / sum : k[x];
      weights[base + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { weights, start, count, ksize };
}

/** Rounds a fixed-point accumulator (which already holds the +0.5 bias) to a clipped uint8. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over rows `row0 .. row0+rows-1` of an RGB image `w` wide, to `outW` wide. */
function horizontal(
  src: Uint8Array,
  w: number,
  row0: number,
  rows: number,
  outW: number,
  c: Coefficients,
): Uint8Array {
  const out = new Uint8Array(outW * rows * 3);
  const { weights, start, count, ksize } = c;
  for (let y = 0; y < rows; y++) {
    const rowBase = (y + row0) * w * 3;
    const outBase = y * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const kb = xx * ksize;
      const n = count[xx];
      let p = rowBase + start[xx] * 3;
      let r = HALF, g = HALF, b = HALF;
      for (let x = 0; x < n; x++, p += 3) {
        const k = weights[kb + x];
        r += src[p] * k;
        g += src[p + 1] * k;
        b += src[p + 2] * k;
      }
      const o = outBase + xx * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

/** Vertical pass of an RGB image `w` wide to `outH` rows; `c.start` is relative to `row0`. */
function vertical(
  src: Uint8Array,
  w: number,
  row0: number,
  outH: number,
  c: Coefficients,
): Uint8Array {
  const out = new Uint8Array(w * outH * 3);
  const { weights, start, count, ksize } = c;
  const stride = w * 3;
  for (let yy = 0; yy < outH; yy++) {
    const kb = yy * ksize;
    const n = count[yy];
    const first = (start[yy] - row0) * stride;
    const outBase = yy * stride;
    for (let i = 0; i < stride; i++) {
      let acc = HALF;
      let p = first + i;
      for (let y = 0; y < n; y++, p += stride) acc += src[p] * weights[kb + y];
      out[outBase + i] = clip8(acc);
    }
  }
  return out;
}

/** Which pass runs first when both dimensions change. */
export type PassOrder = "pillow13" | "horizontal-first";

/** Options of {@link resizeBicubic}. */
export interface ResizeOptions {
  /**
   * `pillow13` (default): as Pillow 13, which runs the vertical pass first when the height
   * shrinks by more than twice as many pixels as the width does; `horizontal-first`: as Pillow
   * 12 and older. The two orders can differ by a few grey levels because each pass rounds.
   */
  readonly passOrder?: PassOrder;
}

/** True when Pillow 13 would run the vertical pass first for this resize. */
export function verticalFirst(w: number, h: number, outW: number, outH: number): boolean {
  return outH < h && h - outH > 2 * (w - outW);
}

/**
 * Resizes an 8-bit RGB image (HWC, `w`×`h`) to `outW`×`outH` as Pillow's BICUBIC resize does
 * (bit-exact by construction: same kernel, windows, fixed-point rounding, per-pass clipping and
 * pass order).
 */
export function resizeBicubic(
  rgb: Uint8Array,
  w: number,
  h: number,
  outW: number,
  outH: number = outW,
  opts: ResizeOptions = {},
): Uint8Array {
  if (rgb.length !== w * h * 3) {
    throw new RangeError(`resizeBicubic: expected ${w * h * 3} bytes for ${w}x${h} RGB`);
  }
  if (!(outW > 0 && outH > 0 && Number.isInteger(outW) && Number.isInteger(outH))) {
    throw new RangeError(`resizeBicubic: bad output size ${outW}x${outH}`);
  }
  const needH = outW !== w;
  const needV = outH !== h;
  if (!needH && !needV) return rgb.slice();
  if (!needV) return horizontal(rgb, w, 0, h, outW, coefficients(w, outW));
  const cv = coefficients(h, outH);
  if (!needH) return vertical(rgb, w, 0, outH, cv);
  const ch = coefficients(w, outW);
  if ((opts.passOrder ?? "pillow13") === "pillow13" && verticalFirst(w, h, outW, outH)) {
    return horizontal(vertical(rgb, w, 0, outH, cv), w, 0, outH, outW, ch);
  }
  // Only the source rows that the vertical pass reads go through the horizontal pass.
  const row0 = cv.start[0];
  const rowEnd = cv.start[outH - 1] + cv.count[outH - 1];
  const mid = horizontal(rgb, w, row0, rowEnd - row0, outW, ch);
  return vertical(mid, outW, row0, outH, cv);
}
