/**
 * Pastes a decoded 64×64 VQ-VAE mask into its box, giving a full-size binary mask, per convention:
 * `big_vision` resizes the float mask bilinearly (Pillow, mode F) and keeps values > 0;
 * `hf-demo` maps it with clip(m*0.5+0.5, 0, 1), scales to uint8 (truncating), resizes bicubically
 * (Pillow, mode L) and keeps values / 255 > 0.5.
 * @module
 */

import type { Box, Convention } from "../detect/convention.ts";
import { resample } from "../image/pil_resample.ts";

/** Side of the VQ-VAE's output mask. */
export const MASK_SIDE = 64;

/** A binary mask: `width * height` bytes, 1 inside, row-major. */
export interface BinaryMask {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** 0 or 1 per pixel. */
  readonly data: Uint8Array;
}

/** The 64×64 mask resized to `w`×`h` and thresholded, per convention (row-major 0/1). */
export function boxMask(
  m64: Float32Array,
  w: number,
  h: number,
  convention: Convention,
): Uint8Array {
  if (m64.length !== MASK_SIDE * MASK_SIDE) {
    throw new RangeError(`mask has ${m64.length} values, expected ${MASK_SIDE * MASK_SIDE}`);
  }
  if (w <= 0 || h <= 0) return new Uint8Array(0);
  if (convention === "big_vision") {
    const r = resample(m64, MASK_SIDE, MASK_SIDE, w, h, "bilinear");
    return Uint8Array.from(r, (v) => (v > 0 ? 1 : 0));
  }
  const u8 = new Uint8Array(m64.length);
  const half = Math.fround(0.5);
  for (let i = 0; i < m64.length; i++) {
    const v = Math.min(Math.max(Math.fround(Math.fround(m64[i] * half) + half), 0), 1);
    u8[i] = Math.trunc(Math.fround(v * 255));
  }
  const r = resample(u8, MASK_SIDE, MASK_SIDE, w, h, "bicubic");
  return r.map((v) => (v / 255 > 0.5 ? 1 : 0));
}

/** The full-size binary mask: `boxMask` pasted at `box` (clipped to the image), zeros elsewhere. */
export function pasteMask(
  m64: Float32Array,
  box: Box,
  width: number,
  height: number,
  convention: Convention,
): BinaryMask {
  const data = new Uint8Array(width * height);
  const w = box.x2 - box.x1;
  const h = box.y2 - box.y1;
  const inner = boxMask(m64, w, h, convention);
  for (let y = 0; y < h; y++) {
    const iy = box.y1 + y;
    if (iy < 0 || iy >= height) continue;
    for (let x = 0; x < w; x++) {
      const ix = box.x1 + x;
      if (ix < 0 || ix >= width) continue;
      data[iy * width + ix] = inner[y * w + x];
    }
  }
  return { width, height, data };
}
