/**
 * Binary masks as 8-bit greyscale PNGs (255 inside, 0 outside), encoded with sharp.
 * @module
 */

import sharp from "sharp";
import type { BinaryMask } from "./paste.ts";

/** Encodes a mask as a one-channel PNG of the mask's size. */
export async function maskToPng(mask: BinaryMask): Promise<Uint8Array> {
  const grey = Uint8Array.from(mask.data, (v) => (v ? 255 : 0));
  const png = await sharp(grey, {
    raw: { width: mask.width, height: mask.height, channels: 1 },
  }).png().toBuffer();
  return new Uint8Array(png);
}
