/**
 * Reads the colour that a GIF's first frame marks as transparent, so that transparent pixels can
 * be given that colour, as PIL's `convert("RGB")` of the palette image does (the decoder we use
 * returns them as black with alpha 0).
 * @module
 */

/** An 8-bit RGB colour. */
export type Rgb = readonly [number, number, number];

/** Skips a chain of GIF data sub-blocks starting at `p`; returns the offset after the terminator. */
function skipSubBlocks(b: Uint8Array, p: number): number {
  while (p < b.length) {
    const n = b[p];
    p += 1 + n;
    if (n === 0) return p;
  }
  return -1;
}

/** Reads `count` palette entries at `p`, or undefined if the file is too short. */
function readPalette(b: Uint8Array, p: number, count: number): Uint8Array | undefined {
  return p + count * 3 <= b.length ? b.subarray(p, p + count * 3) : undefined;
}

/**
 * The palette colour of the first frame's transparent index, or undefined when the first frame
 * has no transparency (or the bytes are not a well-formed GIF up to that frame).
 */
export function gifTransparentColour(b: Uint8Array): Rgb | undefined {
  if (b.length < 13 || String.fromCharCode(...b.subarray(0, 3)) !== "GIF") return undefined;
  const flags = b[10];
  let p = 13;
  let palette: Uint8Array | undefined;
  if (flags & 0x80) {
    const count = 1 << ((flags & 7) + 1);
    palette = readPalette(b, p, count);
    p += count * 3;
  }
  let transparent = -1;
  while (p > 0 && p < b.length) {
    const tag = b[p];
    if (tag === 0x21) {
      const label = b[p + 1];
      if (label === 0xf9 && p + 6 < b.length && b[p + 2] >= 4) {
        transparent = b[p + 3] & 1 ? b[p + 6] : -1;
      }
      p = skipSubBlocks(b, p + 2);
    } else if (tag === 0x2c) {
      if (p + 10 > b.length) return undefined;
      const local = b[p + 9];
      if (local & 0x80) palette = readPalette(b, p + 10, 1 << ((local & 7) + 1));
      break;
    } else {
      return undefined;
    }
  }
  if (transparent < 0 || palette === undefined || transparent * 3 + 2 >= palette.length) {
    return undefined;
  }
  const q = transparent * 3;
  return [palette[q], palette[q + 1], palette[q + 2]];
}
