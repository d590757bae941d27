/**
 * Bicubic resampling of 8-bit RGB images that reproduces Pillow's `Image.resize(size, BICUBIC)`,
 * the image processor's resize: a thin wrapper over the shared Pillow core in `pil_resample.ts`.
 * @module
 */

import { type PassOrder, resample, verticalFirst } from "./pil_resample.ts";

export { type PassOrder, verticalFirst };

/** Options of {@link resizeBicubic}. */
export interface ResizeOptions {
  /** Pass order (default `pillow13`); see `pil_resample.ts`. */
  readonly passOrder?: PassOrder;
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
  return resample(rgb, w, h, outW, outH, "bicubic", { channels: 3, passOrder: opts.passOrder });
}
