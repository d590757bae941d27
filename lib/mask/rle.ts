/**
 * COCO run-length encoding of binary masks, as pycocotools writes it: runs over the mask in
 * column-major order starting with a run of zeros, `counts` compressed to the LEB128-like
 * string of `rleToString` (5 bits a character, offset 48, runs after the second stored as the
 * difference from the run two before).
 * @module
 */

import type { BinaryMask } from "./paste.ts";

/** A COCO RLE: `size` is [height, width]; `counts` the compressed string. */
export interface CocoRle {
  /** [height, width]. */
  readonly size: [number, number];
  /** pycocotools' compressed counts string. */
  readonly counts: string;
}

/** Run lengths of a mask in column-major order, starting with zeros. */
export function maskRuns(mask: BinaryMask): number[] {
  const { width, height, data } = mask;
  const runs: number[] = [];
  let current = 0;
  let n = 0;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const v = data[y * width + x] ? 1 : 0;
      if (v !== current) {
        runs.push(n);
        n = 0;
        current = v;
      }
      n++;
    }
  }
  runs.push(n);
  return runs;
}

/** pycocotools `rleToString`. */
export function runsToString(runs: readonly number[]): string {
  let s = "";
  for (let i = 0; i < runs.length; i++) {
    let x = runs[i];
    if (i > 2) x -= runs[i - 2];
    let more = true;
    while (more) {
      let c = ((x % 32) + 32) % 32;
      x = Math.floor(x / 32);
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s += String.fromCharCode(c + 48);
    }
  }
  return s;
}

/** pycocotools `rleFrString`: the run lengths of a counts string. */
export function runsFromString(s: string): number[] {
  const runs: number[] = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 32 ** k;
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && (c & 0x10)) x -= 32 ** k;
    }
    if (runs.length > 2) x += runs[runs.length - 2];
    runs.push(x);
  }
  return runs;
}

/** Encodes a binary mask as a COCO RLE. */
export function encodeRle(mask: BinaryMask): CocoRle {
  return { size: [mask.height, mask.width], counts: runsToString(maskRuns(mask)) };
}

/** Decodes a COCO RLE back to a binary mask (row-major). */
export function decodeRle(rle: CocoRle): BinaryMask {
  const [height, width] = rle.size;
  const data = new Uint8Array(width * height);
  let i = 0;
  let v = 0;
  for (const run of runsFromString(rle.counts)) {
    for (let r = 0; r < run; r++, i++) {
      const x = Math.floor(i / height);
      const y = i - x * height;
      data[y * width + x] = v;
    }
    v ^= 1;
  }
  if (i !== width * height) {
    throw new RangeError(`RLE covers ${i} pixels, expected ${width * height}`);
  }
  return { width, height, data };
}

/** Number of set pixels. */
export function maskArea(mask: BinaryMask): number {
  let n = 0;
  for (const v of mask.data) n += v;
  return n;
}

/** The tight box [x, y, w, h] of a mask's set pixels (COCO `toBbox`), zeros when empty. */
export function maskBbox(mask: BinaryMask): [number, number, number, number] {
  let x1 = mask.width, y1 = mask.height, x2 = -1, y2 = -1;
  for (let y = 0; y < mask.height; y++) {
    for (let x = 0; x < mask.width; x++) {
      if (!mask.data[y * mask.width + x]) continue;
      if (x < x1) x1 = x;
      if (x > x2) x2 = x;
      if (y < y1) y1 = y;
      if (y > y2) y2 = y;
    }
  }
  return x2 < 0 ? [0, 0, 0, 0] : [x1, y1, x2 - x1 + 1, y2 - y1 + 1];
}
