/**
 * Pillow's `Image.resize` reproduced, for any channel count, as one core shared by the image
 * processor (uint8 RGB; bicubic unless preprocessor_config.json names another of Pillow's
 * convolution filters) and the mask paste (float and uint8 masks, bilinear or bicubic):
 * a separable convolution whose filter support is widened by the scale when shrinking, weights
 * normalised to sum 1, then either float accumulation in doubles stored as float32 (mode `F`) or
 * 22-bit fixed-point weights with integer accumulation, rounding and clipping to uint8 after each
 * pass (8-bit modes). Pass order as Pillow 13: horizontal first unless the height shrinks by more
 * than twice as many pixels as the width. Written from the algorithm's description, not from
 * Pillow's code.
 * @module
 */

/** A Pillow resampling filter (its convolution filters; NEAREST is a different algorithm). */
export type PilFilter = "box" | "bilinear" | "hamming" | "bicubic" | "lanczos";

/** Pillow's id of each filter (`Image.Resampling`, and `resample` in preprocessor_config.json). */
export const PIL_FILTER_IDS: Readonly<Record<PilFilter, number>> = {
  lanczos: 1,
  bilinear: 2,
  bicubic: 3,
  box: 4,
  hamming: 5,
};

/** Which pass runs first when both dimensions change. */
export type PassOrder = "pillow13" | "horizontal-first";

/** A resampling kernel and its half-width in source samples at scale 1. */
interface Kernel {
  readonly support: number;
  readonly fn: (x: number) => number;
}

/** The cubic convolution kernel with a = -0.5 (Keys), evaluated as Pillow writes it. */
function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** The triangle kernel. */
function bilinear(x: number): number {
  if (x < 0) x = -x;
  return x < 1 ? 1 - x : 0;
}

/** The box kernel, 1 on (-0.5, 0.5]. */
function box(x: number): number {
  return x > -0.5 && x <= 0.5 ? 1 : 0;
}

/** sin(πx)/(πx). */
function sinc(x: number): number {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

/** sinc windowed by a Hamming window over [-1, 1]. */
function hamming(x: number): number {
  if (x < 0) x = -x;
  if (x === 0) return 1;
  if (x >= 1) return 0;
  x *= Math.PI;
  return Math.sin(x) / x * (0.54 + 0.46 * Math.cos(x));
}

/** Lanczos-3: sinc windowed by sinc(x/3) over [-3, 3). */
function lanczos(x: number): number {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

const KERNELS: Readonly<Record<PilFilter, Kernel>> = {
  box: { support: 0.5, fn: box },
  bilinear: { support: 1, fn: bilinear },
  hamming: { support: 1, fn: hamming },
  bicubic: { support: 2, fn: bicubic },
  lanczos: { support: 3, fn: lanczos },
};

/** Fixed-point fraction bits of 8-bit weights (32 bits minus 8 for the sample minus 2 spare). */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

/** Per-output-sample window of source samples and its normalised weights. */
export interface Coefficients {
  /** Weights per output sample: `ksize` slots, the first `count[i]` used. */
  readonly weights: Float64Array;
  /** First source sample of each output sample. */
  readonly start: Int32Array;
  /** Number of source samples of each output sample. */
  readonly count: Int32Array;
  /** Slots per output sample in `weights`. */
  readonly ksize: number;
}

/** Computes the normalised weights that map `inSize` samples onto `outSize` samples. */
export function coefficients(inSize: number, outSize: number, filter: PilFilter): Coefficients {
  const kernel = KERNELS[filter];
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = kernel.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const weights = new Float64Array(outSize * ksize);
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const inv = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const base = xx * ksize;
    let sum = 0;
    for (let x = 0; x < xmax; x++) {
      const w = kernel.fn((x + xmin - center + 0.5) * inv);
      weights[base + x] = w;
      sum += w;
    }
    if (sum !== 0) { for (let x = 0; x < xmax; x++) weights[base + x] /= sum; }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { weights, start, count, ksize };
}

/** The weights as rounded 22-bit fixed-point integers, as Pillow's 8-bit passes use them. */
function fixedPoint(w: Float64Array): Int32Array {
  const out = new Int32Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const v = w[i];
    out[i] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
  }
  return out;
}

/** Rounds a fixed-point accumulator (which already holds the +0.5 bias) to a clipped uint8. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Samples of an image: 8-bit (fixed-point passes) or float32 (mode `F` passes). */
export type Samples = Uint8Array | Float32Array;

/** An image `width`×`height` with `channels` interleaved samples per pixel (HWC). */
interface Plane<T extends Samples> {
  readonly data: T;
  readonly width: number;
  readonly channels: number;
}

/** Allocates an output like `src`'s kind. */
function like<T extends Samples>(src: T, n: number): T {
  return (src instanceof Uint8Array ? new Uint8Array(n) : new Float32Array(n)) as T;
}

/** Horizontal pass over rows `row0 .. row0+rows-1` of `img`, to `outW` wide. */
function horizontal<T extends Samples>(
  img: Plane<T>,
  row0: number,
  rows: number,
  outW: number,
  c: Coefficients,
): T {
  const { data: src, width: w, channels: ch } = img;
  const out = like(src, outW * rows * ch);
  const { start, count, ksize } = c;
  const u8 = src instanceof Uint8Array;
  const k = u8 ? fixedPoint(c.weights) : c.weights;
  const init = u8 ? HALF : 0;
  for (let y = 0; y < rows; y++) {
    const rowBase = (y + row0) * w * ch;
    const outBase = y * outW * ch;
    for (let xx = 0; xx < outW; xx++) {
      const kb = xx * ksize;
      const n = count[xx];
      const first = rowBase + start[xx] * ch;
      const o = outBase + xx * ch;
      if (ch === 3) {
        // The image processor's case, one walk over the window for all three channels.
        let r = init, g = init, b = init;
        for (let x = 0, p = first; x < n; x++, p += 3) {
          const kx = k[kb + x];
          r += src[p] * kx;
          g += src[p + 1] * kx;
          b += src[p + 2] * kx;
        }
        out[o] = u8 ? clip8(r) : r;
        out[o + 1] = u8 ? clip8(g) : g;
        out[o + 2] = u8 ? clip8(b) : b;
        continue;
      }
      for (let ci = 0; ci < ch; ci++) {
        let acc = init;
        let p = first + ci;
        for (let x = 0; x < n; x++, p += ch) acc += src[p] * k[kb + x];
        out[o + ci] = u8 ? clip8(acc) : acc;
      }
    }
  }
  return out;
}

/** Vertical pass of `img` (source rows from `row0` on) to `outH` rows; `c.start` counts from 0. */
function vertical<T extends Samples>(
  img: Plane<T>,
  row0: number,
  outH: number,
  c: Coefficients,
): T {
  const { data: src, width: w, channels: ch } = img;
  const stride = w * ch;
  const out = like(src, stride * outH);
  const { start, count, ksize } = c;
  const u8 = src instanceof Uint8Array;
  const k = u8 ? fixedPoint(c.weights) : c.weights;
  const init = u8 ? HALF : 0;
  for (let yy = 0; yy < outH; yy++) {
    const kb = yy * ksize;
    const n = count[yy];
    const first = (start[yy] - row0) * stride;
    const outBase = yy * stride;
    for (let i = 0; i < stride; i++) {
      let acc = init;
      let p = first + i;
      for (let y = 0; y < n; y++, p += stride) acc += src[p] * k[kb + y];
      out[outBase + i] = u8 ? clip8(acc) : acc;
    }
  }
  return out;
}

/** True when Pillow 13 would run the vertical pass first for this resize. */
export function verticalFirst(w: number, h: number, outW: number, outH: number): boolean {
  return outH < h && h - outH > 2 * (w - outW);
}

/** Options of {@link resample}. */
export interface ResampleOptions {
  /** Samples per pixel, interleaved (default 1). */
  readonly channels?: number;
  /**
   * `pillow13` (default): as Pillow 13, which runs the vertical pass first when the height
   * shrinks by more than twice as many pixels as the width does; `horizontal-first`: as Pillow
   * 12 and older. The two orders can differ by a few levels because each pass rounds.
   */
  readonly passOrder?: PassOrder;
}

/**
 * Resizes an HWC image `w`×`h` to `outW`×`outH` as Pillow's `Image.resize(size, filter)` does:
 * uint8 samples as Pillow's 8-bit modes (L, RGB, RGBA), float32 samples as mode `F`. Returns a
 * new array (a copy when the size is unchanged).
 */
export function resample<T extends Samples>(
  src: T,
  w: number,
  h: number,
  outW: number,
  outH: number,
  filter: PilFilter,
  opts: ResampleOptions = {},
): T {
  const ch = opts.channels ?? 1;
  if (src.length !== w * h * ch) {
    throw new RangeError(`resample: expected ${w * h * ch} samples for ${w}x${h}x${ch}`);
  }
  if (!(outW > 0 && outH > 0 && Number.isInteger(outW) && Number.isInteger(outH))) {
    throw new RangeError(`resample: bad output size ${outW}x${outH}`);
  }
  const needH = outW !== w;
  const needV = outH !== h;
  if (!needH && !needV) return src.slice() as T;
  const img: Plane<T> = { data: src, width: w, channels: ch };
  if (!needV) return horizontal(img, 0, h, outW, coefficients(w, outW, filter));
  const cv = coefficients(h, outH, filter);
  if (!needH) return vertical(img, 0, outH, cv);
  const ch2 = coefficients(w, outW, filter);
  if ((opts.passOrder ?? "pillow13") === "pillow13" && verticalFirst(w, h, outW, outH)) {
    const mid = vertical(img, 0, outH, cv);
    return horizontal({ data: mid, width: w, channels: ch }, 0, outH, outW, ch2);
  }
  // Only the source rows that the vertical pass reads go through the horizontal pass.
  const row0 = cv.start[0];
  const rowEnd = cv.start[outH - 1] + cv.count[outH - 1];
  const mid = horizontal(img, row0, rowEnd - row0, outW, ch2);
  return vertical({ data: mid, width: outW, channels: ch }, row0, outH, cv);
}
