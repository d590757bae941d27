/**
 * Pillow's `Image.resize` for single-channel images, reproduced: separable convolution with the
 * filter's support widened by the scale when shrinking, horizontal pass first unless the height
 * shrinks by more than twice as many pixels as the width (Pillow ≥ 12's order). Mode `F` (float32,
 * double accumulation) and mode `L` (uint8, 22-bit fixed-point coefficients, rounded and clipped).
 * @module
 */

/** A Pillow resampling filter. */
export type PilFilter = "bilinear" | "bicubic";

interface Filter {
  readonly support: number;
  readonly fn: (x: number) => number;
}

const FILTERS: Readonly<Record<PilFilter, Filter>> = {
  bilinear: {
    support: 1,
    fn: (x) => {
      const a = Math.abs(x);
      return a < 1 ? 1 - a : 0;
    },
  },
  bicubic: {
    support: 2,
    fn: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
};

/** Per output index: first input index, tap count and `ksize` weights. */
interface Coeffs {
  readonly ksize: number;
  readonly bounds: Int32Array;
  readonly weights: Float64Array;
}

/** Pillow's `precompute_coeffs` for the full input range. */
function coeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      weights[xx * ksize + x] = w;
      ww += w;
    }
    if (ww !== 0) { for (let x = 0; x < xmax; x++) weights[xx * ksize + x] /= ww; }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

/** Pillow's `normalize_coeffs_8bpc`: weights as rounded fixed-point integers. */
function fixedPoint(w: Float64Array): Float64Array {
  return w.map((v) => (v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE)));
}

function clip8(ss: number): number {
  const v = Math.floor(ss / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** One pass along x (`horizontal`) or y over a single-channel image, float or fixed point. */
function pass(
  src: ArrayLike<number>,
  w: number,
  h: number,
  outSize: number,
  horizontal: boolean,
  filter: Filter,
  u8: boolean,
): Float32Array | Uint8Array {
  const c = coeffs(horizontal ? w : h, outSize, filter);
  const k = u8 ? fixedPoint(c.weights) : c.weights;
  const ow = horizontal ? outSize : w;
  const oh = horizontal ? h : outSize;
  const out = u8 ? new Uint8Array(ow * oh) : new Float32Array(ow * oh);
  const init = u8 ? ONE / 2 : 0;
  for (let o = 0; o < outSize; o++) {
    const min = c.bounds[o * 2];
    const n = c.bounds[o * 2 + 1];
    const kb = o * c.ksize;
    const lines = horizontal ? h : w;
    for (let line = 0; line < lines; line++) {
      let ss = init;
      if (horizontal) {
        const row = line * w + min;
        for (let t = 0; t < n; t++) ss += src[row + t] * k[kb + t];
        out[line * ow + o] = u8 ? clip8(ss) : ss;
      } else {
        for (let t = 0; t < n; t++) ss += src[(min + t) * w + line] * k[kb + t];
        out[o * ow + line] = u8 ? clip8(ss) : ss;
      }
    }
  }
  return out;
}

/** `Image.fromarray(float32, "F").resize((outW, outH), filter)` as Pillow computes it. */
export function resizeFloatPil(
  src: Float32Array,
  width: number,
  height: number,
  outW: number,
  outH: number,
  filter: PilFilter,
): Float32Array {
  return resize(src, width, height, outW, outH, filter, false) as Float32Array;
}

/** `Image.fromarray(uint8, "L").resize((outW, outH), filter)` as Pillow computes it. */
export function resizeU8Pil(
  src: Uint8Array,
  width: number,
  height: number,
  outW: number,
  outH: number,
  filter: PilFilter,
): Uint8Array {
  return resize(src, width, height, outW, outH, filter, true) as Uint8Array;
}

function resize(
  src: Float32Array | Uint8Array,
  width: number,
  height: number,
  outW: number,
  outH: number,
  name: PilFilter,
  u8: boolean,
): Float32Array | Uint8Array {
  if (outW <= 0 || outH <= 0) return u8 ? new Uint8Array(0) : new Float32Array(0);
  const f = FILTERS[name];
  let img: Float32Array | Uint8Array = src;
  // Pillow 13: when the height shrinks by more than twice what the width does, vertical first.
  const verticalFirst = height - outH > 0 && height - outH > (width - outW) * 2;
  if (verticalFirst) {
    img = pass(img, width, height, outH, false, f, u8);
    if (outW !== width) img = pass(img, width, outH, outW, true, f, u8);
  } else {
    if (outW !== width) img = pass(img, width, height, outW, true, f, u8);
    if (outH !== height) img = pass(img, outW, height, outH, false, f, u8);
  }
  return img === src ? src.slice() : img;
}
