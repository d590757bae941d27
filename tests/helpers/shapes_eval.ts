/**
 * End-to-end accuracy of a model on a held-out set of shape scenes (tests/reference/shapes/), measured
 * through the CLI as a user runs it: caption exact match, count accuracy, box mAP from `--coco`, and
 * mean mask IoU from `segment --json`. Shared by tests/shapes_accuracy_test.ts and the benchmark
 * script tests/bench/shapes_accuracy.ts.
 * @module
 */
import { join } from "node:path";
import { type CocoRle, decodeRle } from "../../lib/mask/rle.ts";
import type { Convention } from "../../lib/detect/convention.ts";
import { locateObjects } from "../../lib/detect/objects.ts";
import type { MaskDecoder } from "../../lib/vqvae/session.ts";
import { runPg } from "./cli.ts";
import { boxIou, cocoMap, type DetBox, type GtBox } from "./coco_map.ts";

/** One object of the ground truth. */
export interface TruthObject {
  /** circle, square, triangle or star. */
  readonly shape: string;
  /** Colour name. */
  readonly colour: string;
  /** [x1, y1, x2, y2] in pixels, x2/y2 exclusive. */
  readonly box: readonly number[];
  /** Visible mask, COCO RLE. */
  readonly mask: CocoRle;
  /** The `segment` answer a perfect model gives (big_vision loc tokens, the VQ-VAE's seg codes). */
  readonly answer: string;
}

/** One held-out scene. */
export interface TruthImage {
  /** PNG file name in the set folder. */
  readonly file: string;
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** The expected caption. */
  readonly caption: string;
  /** Expected answer to "how many <shape>s?" per shape. */
  readonly counts: Readonly<Record<string, number>>;
  /** Objects, left to right. */
  readonly objects: readonly TruthObject[];
}

/** truth.json as tests/reference/shapes/make_heldout.py writes it. */
export interface Truth {
  /** The shape names; category_id = position + 1. */
  readonly shapes: readonly string[];
  /** The scenes. */
  readonly images: readonly TruthImage[];
  /** COCO ground truth (annotations carry bbox and RLE segmentation). */
  readonly coco: { readonly annotations: readonly GtBox[] };
}

/** Detection and segmentation figures under one convention. */
export interface ConventionMetrics {
  /** Box mAP@[.5:.95] of `detect --coco`. */
  readonly map: number;
  /** Box mAP@.5 of `detect --coco`. */
  readonly map50: number;
  /** Mean over ground-truth objects of the mask IoU with the matched `segment` object (0 if none). */
  readonly maskIou: number;
  /** The `detect --coco` entries (for the pycocotools cross-check). */
  readonly coco: DetBox[];
}

/** Every figure for one model on one set. */
export interface ShapesMetrics {
  /** Scenes evaluated. */
  readonly images: number;
  /** Fraction of captions equal to the expected one. */
  readonly caption: number;
  /** Fraction of "how many <shape>s?" answers equal to the count (4 questions per scene). */
  readonly count: number;
  /** Per convention. */
  readonly conventions: Readonly<Record<string, ConventionMetrics>>;
}

/** Plural of a shape name as the questions use it. */
const plural = (s: string) => `${s}s`;

/** Reads a set folder's truth.json. */
export async function readTruth(dir: string): Promise<Truth> {
  return JSON.parse(await Deno.readTextFile(join(dir, "truth.json")));
}

/** Runs `pg` and returns its stdout lines parsed as NDJSON; throws with stderr on a non-zero exit. */
async function ndjson(args: string[]): Promise<Record<string, unknown>[]> {
  const r = await runPg(args);
  if (r.code !== 0) throw new Error(`pg ${args.join(" ")} exited ${r.code}:\n${r.stderr}`);
  return r.stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** The part of a `segment --json` record that is scored. */
export interface SegRecord {
  /** Objects with their label, pixel box and RLE mask. */
  readonly objects: { label: string; box: Record<string, number>; mask: CocoRle }[];
}

/** Mean mask IoU: each truth object is matched (same label, best box IoU, one-to-one) to a predicted one. */
export function meanMaskIou(
  truth: Truth,
  records: readonly SegRecord[],
): number {
  let sum = 0;
  let n = 0;
  truth.images.forEach((img, i) => {
    const preds = records[i]?.objects ?? [];
    const used = new Set<number>();
    for (const o of img.objects) {
      n++;
      let best = -1;
      let bestIou = 0;
      preds.forEach((p, k) => {
        if (used.has(k) || p.label !== o.shape) return;
        const { x1, y1, x2, y2 } = p.box;
        const iou = boxIou([x1, y1, x2 - x1, y2 - y1], [
          o.box[0],
          o.box[1],
          o.box[2] - o.box[0],
          o.box[3] - o.box[1],
        ]);
        if (iou > bestIou) [best, bestIou] = [k, iou];
      });
      if (best < 0) continue;
      used.add(best);
      sum += maskIou(decodeRle(o.mask).data, decodeRle(preds[best].mask).data);
    }
  });
  return n === 0 ? 0 : sum / n;
}

/** IoU of two same-sized binary masks (non-zero = inside). */
export function maskIou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`mask sizes differ: ${a.length} vs ${b.length}`);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] !== 0;
    const y = b[i] !== 0;
    if (x && y) inter++;
    if (x || y) union++;
  }
  return union === 0 ? 1 : inter / union;
}

/** Options of {@link evaluateShapes}. */
export interface EvaluateOptions {
  /** Converted model folder (with the VQ-VAE decoder). */
  readonly model: string;
  /** Set folder (PNGs + truth.json). */
  readonly dir: string;
  /** Conventions to evaluate detection and segmentation under. */
  readonly conventions: readonly Convention[];
  /** Folder for the `--coco` files. */
  readonly work: string;
}

/** Runs caption, answer, detect and segment over the set through the CLI and scores the answers. */
export async function evaluateShapes(opts: EvaluateOptions): Promise<ShapesMetrics> {
  const truth = await readTruth(opts.dir);
  const images = truth.images.map((im) => join(opts.dir, im.file));
  const model = ["--model", opts.model, "--json"];
  const caps = await ndjson(["caption", ...images, ...model, "--max-tokens", "32"]);
  const caption = truth.images.filter((im, i) => caps[i]?.text === im.caption).length /
    truth.images.length;
  let right = 0;
  for (const shape of truth.shapes) {
    const q = `how many ${plural(shape)}?`;
    const ans = await ndjson(["answer", ...images, "-q", q, ...model, "--max-tokens", "4"]);
    right += truth.images.filter((im, i) => ans[i]?.text === String(im.counts[shape])).length;
  }
  const count = right / (truth.images.length * truth.shapes.length);
  const labels = ["--labels", truth.shapes.join(" ; ")];
  const conventions: Record<string, ConventionMetrics> = {};
  for (const c of opts.conventions) {
    const cocoFile = join(opts.work, `detect-${c}.json`);
    await ndjson([
      ...["detect", ...images, ...labels, ...model, "--convention", c],
      ...["--coco", cocoFile, "--max-tokens", "40"],
    ]);
    const coco: DetBox[] = JSON.parse(await Deno.readTextFile(cocoFile));
    const { map, map50 } = cocoMap(truth.coco.annotations, coco);
    // `pg segment` takes one label: one run per shape, objects merged per image.
    const seg: SegRecord[] = truth.images.map(() => ({ objects: [] }));
    for (const shape of truth.shapes) {
      const recs = await ndjson([
        ...["segment", ...images, "--label", shape, ...model, "--convention", c],
        ...["--max-tokens", "80"],
      ]) as unknown as SegRecord[];
      recs.forEach((r, i) => seg[i].objects.push(...r.objects));
    }
    const maskIou = meanMaskIou(truth, seg);
    conventions[c] = { map, map50, maskIou, coco };
  }
  return { images: truth.images.length, caption, count, conventions };
}

/** How well the CLI's placement code turns perfect answers back into the truth, per convention. */
export interface OracleMetrics {
  /** Objects placed. */
  readonly objects: number;
  /** Fraction whose label is the truth object's. */
  readonly labels: number;
  /** Mean box IoU with the truth object (same answer position). */
  readonly boxIou: number;
  /** Mean mask IoU with the truth object's mask. */
  readonly maskIou: number;
}

/**
 * Places each scene's perfect `segment` answer (all objects, " ; "-joined; truth.json `answer`) with
 * the product's parser, box convention, VQ-VAE decoder and mask paste, and compares object k with
 * truth object k: what a flawless model would score, so any loss comes from the placement code.
 */
export async function oracleSegment(
  truth: Truth,
  decoder: MaskDecoder,
  convention: Convention,
): Promise<OracleMetrics> {
  let n = 0;
  let labels = 0;
  let boxSum = 0;
  let maskSum = 0;
  for (const img of truth.images) {
    const answer = img.objects.map((o) => o.answer).join(" ; ");
    const placed = await locateObjects(answer, {
      mode: "segment",
      convention,
      width: img.width,
      height: img.height,
      tokenProbs: null,
      decoder,
    });
    img.objects.forEach((o, k) => {
      n++;
      const p = placed.objects[k];
      if (!p) return;
      if (p.label === o.shape) labels++;
      const { x1, y1, x2, y2 } = p.box;
      const [tx1, ty1, tx2, ty2] = o.box;
      boxSum += boxIou([x1, y1, x2 - x1, y2 - y1], [tx1, ty1, tx2 - tx1, ty2 - ty1]);
      if (p.mask) maskSum += maskIou(decodeRle(o.mask).data, p.mask.data);
    });
  }
  return { objects: n, labels: labels / n, boxIou: boxSum / n, maskIou: maskSum / n };
}
