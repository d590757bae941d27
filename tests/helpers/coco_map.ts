/**
 * COCO box mAP as pycocotools' COCOeval computes it (iouType bbox, area range all, maxDets 100,
 * IoU thresholds .50:.05:.95, 101 recall points), for the shapes accuracy test and benchmark. Checked
 * against pycocotools on the same files in tests/shapes_accuracy_test.ts.
 * @module
 */

/** One ground-truth box: COCO `bbox` [x, y, w, h] in pixels. */
export interface GtBox {
  /** 1-based image id. */
  readonly image_id: number;
  /** 1-based category id. */
  readonly category_id: number;
  /** [x, y, w, h]. */
  readonly bbox: readonly number[];
}

/** One detection, as a COCO results file has it. */
export interface DetBox extends GtBox {
  /** Confidence used to rank detections. */
  readonly score: number;
}

/** mAP@[.5:.95] and mAP@.5 (the mean AP over categories that have ground truth). */
export interface MapResult {
  /** Mean over IoU thresholds .50:.05:.95 and categories. */
  readonly map: number;
  /** At IoU .5. */
  readonly map50: number;
}

/** COCO box IoU (areas w*h, no +1). */
export function boxIou(a: readonly number[], b: readonly number[]): number {
  const iw = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

const THRESHOLDS = Array.from({ length: 10 }, (_, i) => 0.5 + 0.05 * i);
const RECALLS = Array.from({ length: 101 }, (_, i) => i / 100);

/** Stable sort indices by score, highest first (pycocotools uses a stable mergesort). */
function byScore(dets: readonly DetBox[]): DetBox[] {
  return dets.map((d, i) => ({ d, i })).sort((a, b) => b.d.score - a.d.score || a.i - b.i).map((
    x,
  ) => x.d);
}

/** Average precision of one category at each threshold, or null when it has no ground truth. */
function categoryAp(gts: readonly GtBox[], dets: readonly DetBox[]): number[] | null {
  if (gts.length === 0) return null;
  const images = [...new Set([...gts, ...dets].map((b) => b.image_id))].sort((a, b) => a - b);
  // Per threshold: the matched flag and score of every detection, over all images.
  const matched: { score: number; tp: boolean }[][] = THRESHOLDS.map(() => []);
  for (const img of images) {
    const g = gts.filter((b) => b.image_id === img);
    const d = byScore(dets.filter((b) => b.image_id === img)).slice(0, 100);
    THRESHOLDS.forEach((t, ti) => {
      const taken = new Array(g.length).fill(false);
      for (const det of d) {
        let best = -1;
        let bestIou = Math.min(t, 1 - 1e-10);
        g.forEach((gt, gi) => {
          if (taken[gi]) return;
          const iou = boxIou(det.bbox, gt.bbox);
          if (iou < bestIou) return;
          bestIou = iou;
          best = gi;
        });
        if (best >= 0) taken[best] = true;
        matched[ti].push({ score: det.score, tp: best >= 0 });
      }
    });
  }
  return matched.map((list) => {
    const order = list.map((m, i) => ({ m, i })).sort((a, b) => b.m.score - a.m.score || a.i - b.i);
    let tp = 0;
    let fp = 0;
    const rc: number[] = [];
    const pr: number[] = [];
    for (const { m } of order) {
      if (m.tp) tp++;
      else fp++;
      rc.push(tp / gts.length);
      pr.push(tp / (tp + fp + Number.EPSILON));
    }
    for (let i = pr.length - 1; i > 0; i--) pr[i - 1] = Math.max(pr[i - 1], pr[i]);
    let sum = 0;
    for (const r of RECALLS) {
      const k = rc.findIndex((v) => v >= r);
      if (k >= 0) sum += pr[k];
    }
    return sum / RECALLS.length;
  });
}

/** mAP over the categories with ground truth (categories without any are left out, as COCO does). */
export function cocoMap(gts: readonly GtBox[], dets: readonly DetBox[]): MapResult {
  const cats = [...new Set(gts.map((g) => g.category_id))].sort((a, b) => a - b);
  const aps = cats
    .map((c) =>
      categoryAp(gts.filter((g) => g.category_id === c), dets.filter((d) => d.category_id === c))
    )
    .filter((a): a is number[] => a !== null);
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  return { map: mean(aps.map(mean)), map50: mean(aps.map((a) => a[0])) };
}
