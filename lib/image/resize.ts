/**
 * Resampling of 8-bit RGB images that reproduces Pillow's `Image.resize(size, filter)` (BICUBIC
 * unless the processor config names another filter), the image processor's resize: a thin
 * wrapper over the shared Pillow core in `pil_resample.ts`.
 * @module
 */

import { type PassOrder, type PilFilter, resample, verticalFirst } from "./pil_resample.ts";

export { type PassOrder, verticalFirst };

/** Options of {@link resizeRgb}. */
export interface ResizeOptions {
  /** Pass order (default `pillow13`); see `pil_resample.ts`. */
  readonly passOrder?: PassOrder;
}

/**
 * Resizes an 8-bit RGB image (HWC, `w`×`h`) to `outW`×`outH` as Pillow's resize with `filter`
 * does (bit-exact by construction: same kernel, windows, fixed-point rounding, per-pass clipping
 * and pass order).
 */
export function resizeRgb(
  rgb: Uint8Array,
  w: number,
  h: number,
  outW: number,
  outH: number,
  filter: PilFilter,
  opts: ResizeOptions = {},
): Uint8Array {
  if (rgb.length !== w * h * 3) {
    throw new RangeError(`resizeRgb: expected ${w * h * 3} bytes for ${w}x${h} RGB`);
  }
  return resample(rgb, w, h, outW, outH, filter, { channels: 3, passOrder: opts.passOrder });
}
