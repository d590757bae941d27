/**
 * Overlay pictures: the original image with translucent masks, box outlines and a label (with its
 * score) per object, drawn with sharp (masks as an RGBA layer, boxes and text as SVG).
 * @module
 */

import { Buffer } from "node:buffer";
import sharp from "sharp";
import type { Box } from "../detect/convention.ts";
import type { BinaryMask } from "./paste.ts";

/** What to draw for one object. */
export interface OverlayItem {
  /** The label. */
  readonly label: string;
  /** Pixel box (x2, y2 exclusive). */
  readonly box: Box;
  /** Score shown after the label, when known. */
  readonly score: number | null;
  /** The full-size mask to tint, if any. */
  readonly mask?: BinaryMask;
}

/** An 8-bit RGB image (HWC). */
export interface OverlayImage {
  /** Width. */
  readonly width: number;
  /** Height. */
  readonly height: number;
  /** `width * height * 3` bytes. */
  readonly rgb: Uint8Array;
}

const PALETTE: readonly (readonly [number, number, number])[] = [
  [230, 25, 75],
  [60, 180, 75],
  [0, 130, 200],
  [245, 130, 48],
  [145, 30, 180],
  [70, 240, 240],
  [240, 50, 230],
  [210, 245, 60],
];

const MASK_ALPHA = 0.45;

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** One colour per distinct label, in order of first appearance. */
function colours(items: readonly OverlayItem[]): (readonly [number, number, number])[] {
  const byLabel = new Map<string, number>();
  return items.map((it) => {
    if (!byLabel.has(it.label)) byLabel.set(it.label, byLabel.size);
    return PALETTE[byLabel.get(it.label)! % PALETTE.length];
  });
}

function svgLayer(img: OverlayImage, items: readonly OverlayItem[]): string {
  const cs = colours(items);
  const stroke = Math.max(2, Math.round(Math.min(img.width, img.height) / 200));
  const font = Math.max(10, Math.round(Math.min(img.width, img.height) / 30));
  const parts = items.map((it, i) => {
    const [r, g, b] = cs[i];
    const { x1, y1, x2, y2 } = it.box;
    const text = it.score === null ? it.label : `${it.label} ${it.score.toFixed(2)}`;
    const ty = y1 >= font + 4 ? y1 - 4 : Math.min(y2, img.height) - 4;
    const tw = Math.ceil(text.length * font * 0.6) + 6;
    return `<rect x="${x1}" y="${y1}" width="${Math.max(x2 - x1, 1)}" height="${
      Math.max(y2 - y1, 1)
    }" fill="none" stroke="rgb(${r},${g},${b})" stroke-width="${stroke}"/>` +
      `<rect x="${x1}" y="${ty - font}" width="${tw}" height="${font + 4}" ` +
      `fill="rgb(${r},${g},${b})" fill-opacity="0.8"/>` +
      `<text x="${x1 + 3}" y="${ty}" font-family="sans-serif" font-size="${font}" ` +
      `fill="white">${escapeXml(text)}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${img.width}" height="${img.height}">` +
    `${parts.join("")}</svg>`;
}

/** Blends each object's mask colour into a copy of the image. */
function tinted(img: OverlayImage, items: readonly OverlayItem[]): Uint8Array {
  const out = img.rgb.slice();
  const cs = colours(items);
  items.forEach((it, i) => {
    const m = it.mask;
    if (!m || m.width !== img.width || m.height !== img.height) return;
    const c = cs[i];
    for (let p = 0; p < m.data.length; p++) {
      if (!m.data[p]) continue;
      for (let k = 0; k < 3; k++) {
        out[p * 3 + k] = Math.round(out[p * 3 + k] * (1 - MASK_ALPHA) + c[k] * MASK_ALPHA);
      }
    }
  });
  return out;
}

/** Renders the overlay PNG: masks tinted in, then boxes and labels on top. */
export async function renderOverlay(
  img: OverlayImage,
  items: readonly OverlayItem[],
): Promise<Uint8Array> {
  const base = sharp(tinted(img, items), {
    raw: { width: img.width, height: img.height, channels: 3 },
  });
  const png = await base
    .composite([{ input: Buffer.from(svgLayer(img, items)), top: 0, left: 0 }])
    .png()
    .toBuffer();
  return new Uint8Array(png);
}
