/**
 * The outputs of `detect` and `segment` for one image or all of them: the NDJSON object, the
 * human-readable lines, and the COCO results file.
 * @module
 */

import { encodeRle, maskArea } from "../mask/rle.ts";
import type { Convention } from "./convention.ts";
import type { SkippedPiece } from "./grammar.ts";
import type { DetectedObject } from "./objects.ts";

/** Everything reported for one image. */
export interface ImageReport {
  /** Image path as given. */
  readonly image: string;
  /** Original width. */
  readonly width: number;
  /** Original height. */
  readonly height: number;
  /** Rules used for boxes and masks. */
  readonly convention: Convention;
  /** Objects found. */
  readonly objects: readonly DetectedObject[];
  /** Malformed objects. */
  readonly skipped: readonly SkippedPiece[];
  /** The raw generated answer (special tokens removed). */
  readonly text: string;
}

/** JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The NDJSON object of one image (see the README for the field list). */
export function reportJson(r: ImageReport): Json {
  return {
    image: r.image,
    width: r.width,
    height: r.height,
    convention: r.convention,
    objects: r.objects.map((o): Json => {
      const out: { [key: string]: Json } = {
        label: o.label,
        box: { ...o.box },
        box_normalized: { ...o.normalized },
        score: o.score,
      };
      if (o.mask) {
        const rle = encodeRle(o.mask);
        out.mask = { size: rle.size, counts: rle.counts, area: maskArea(o.mask) };
      }
      return out;
    }),
    skipped: r.skipped.map((s) => ({ raw: s.raw, reason: s.reason })),
    text: r.text,
  };
}

/** `label x1,y1,x2,y2 score` per object (score with 3 decimals, `-` when unknown). */
export function humanLines(r: ImageReport): string[] {
  return r.objects.map((o) => {
    const { x1, y1, x2, y2 } = o.box;
    const score = o.score === null ? "-" : o.score.toFixed(3);
    return `${o.label} ${x1},${y1},${x2},${y2} ${score}`;
  });
}

/** Finds a label in the list, ignoring case and surrounding spaces; -1 when absent. */
export function labelIndex(labels: readonly string[], label: string): number {
  const want = label.trim().toLowerCase();
  return labels.findIndex((l) => l.trim().toLowerCase() === want);
}

/**
 * One image's entries of a COCO results file, from its NDJSON record (`reportJson`): `image_id` as
 * given (the 1-based input position), `category_id` = 1-based position of the label in `labels`,
 * `bbox` [x, y, w, h] in pixels, `score` (0 when unknown) and, for masks, `segmentation` (RLE) and
 * `area`. Objects whose label is not in the list are left out and counted in `dropped`.
 */
export function cocoEntries(
  record: { readonly [key: string]: Json },
  imageId: number,
  labels: readonly string[],
): { entries: Json[]; dropped: number } {
  const entries: Json[] = [];
  let dropped = 0;
  const objects = Array.isArray(record.objects) ? record.objects : [];
  for (const item of objects) {
    const o = item as { [key: string]: Json };
    const cat = labelIndex(labels, String(o.label));
    if (cat < 0) {
      dropped++;
      continue;
    }
    const { x1, y1, x2, y2 } = o.box as { [key: string]: number };
    const entry: { [key: string]: Json } = {
      image_id: imageId,
      category_id: cat + 1,
      bbox: [x1, y1, x2 - x1, y2 - y1],
      score: typeof o.score === "number" ? o.score : 0,
    };
    const mask = o.mask as { [key: string]: Json } | undefined;
    if (mask) {
      entry.segmentation = { size: mask.size, counts: mask.counts };
      entry.area = mask.area;
    }
    entries.push(entry);
  }
  return { entries, dropped };
}
