/**
 * From a generated answer to placed objects: parse it, map boxes to pixels per convention, score
 * each object from the per-token probabilities, and decode and paste masks when segmenting.
 * @module
 */

import { type BinaryMask, pasteMask } from "../mask/paste.ts";
import type { MaskDecoder } from "../vqvae/session.ts";
import { type Box, type Convention, placeBox } from "./convention.ts";
import {
  type AnswerMode,
  parseAnswer,
  type ParsedObject,
  type SkippedPiece,
  tokenLiterals,
} from "./grammar.ts";

/** One object found in an image. */
export interface DetectedObject {
  /** The label the model gave. */
  readonly label: string;
  /** Pixel box in the original image (x2, y2 exclusive). */
  readonly box: Box;
  /** The box as loc / denominator of the convention. */
  readonly normalized: Box;
  /** Mean probability (temperature 1) of the object's loc (and seg) tokens; null if unknown. */
  readonly score: number | null;
  /** The full-size binary mask (segment only). */
  readonly mask?: BinaryMask;
}

/** Everything found in one image. */
export interface ImageObjects {
  /** Well-formed objects in answer order. */
  readonly objects: DetectedObject[];
  /** Malformed pieces. */
  readonly skipped: SkippedPiece[];
  /** Text outside objects. */
  readonly texts: string[];
}

/** Inputs of `locateObjects`. */
export interface LocateOptions {
  /** detect or segment. */
  readonly mode: AnswerMode;
  /** Box and mask rules. */
  readonly convention: Convention;
  /** Original image width. */
  readonly width: number;
  /** Original image height. */
  readonly height: number;
  /** Probabilities of the answer's loc/seg literals (see `literalProbs`), or null if unknown. */
  readonly tokenProbs: readonly number[] | null;
  /** The mask decoder (segment). */
  readonly decoder?: MaskDecoder;
}

/** The loc/seg id ranges of a vocabulary (`<locN>` = locBase + N, `<segN>` = segBase + N). */
export interface LocSegIds {
  /** Id of `<loc0000>`, or -1. */
  readonly locBase: number;
  /** Id of `<seg000>`, or -1. */
  readonly segBase: number;
}

/**
 * The probabilities of the generated loc/seg tokens, aligned with the `<locNNNN>`/`<segNNN>`
 * literals of `answer` (the decoded text); null when the two do not line up (the text then holds
 * a literal that was not a single token, and scores are unknown).
 */
export function literalProbs(
  answer: string,
  tokens: readonly number[],
  probs: readonly number[],
  ids: LocSegIds,
): number[] | null {
  const seen: string[] = [];
  const out: number[] = [];
  tokens.forEach((id, i) => {
    if (ids.locBase >= 0 && id >= ids.locBase && id < ids.locBase + 1024) {
      seen.push(`<loc${String(id - ids.locBase).padStart(4, "0")}>`);
    } else if (ids.segBase >= 0 && id >= ids.segBase && id < ids.segBase + 128) {
      seen.push(`<seg${String(id - ids.segBase).padStart(3, "0")}>`);
    } else return;
    out.push(probs[i]);
  });
  const want = tokenLiterals(answer);
  if (want.length !== seen.length || want.some((w, i) => w !== seen[i])) return null;
  return out;
}

/** Mean of the probabilities at the object's token ordinals, or null if any is missing. */
export function objectScore(
  obj: ParsedObject,
  tokenProbs: readonly number[] | null,
): number | null {
  if (tokenProbs === null || obj.tokenOrdinals.length === 0) return null;
  let sum = 0;
  for (const i of obj.tokenOrdinals) {
    const p = tokenProbs[i];
    if (p === undefined || !Number.isFinite(p)) return null;
    sum += p;
  }
  return sum / obj.tokenOrdinals.length;
}

/** Parses `answer` and places its objects (decoding masks when segmenting). */
export async function locateObjects(answer: string, opts: LocateOptions): Promise<ImageObjects> {
  const parsed = parseAnswer(answer, opts.mode);
  const placed = parsed.objects.map((o) => ({
    parsed: o,
    ...placeBox(o.loc, opts.width, opts.height, opts.convention),
  }));
  let masks: Float32Array[] = [];
  if (opts.mode === "segment") {
    if (!opts.decoder) throw new TypeError("locateObjects: segment needs a mask decoder");
    masks = await opts.decoder.decode(placed.map((p) => p.parsed.seg ?? []));
  }
  const objects = placed.map((p, i): DetectedObject => ({
    label: p.parsed.label,
    box: p.box,
    normalized: p.normalized,
    score: objectScore(p.parsed, opts.tokenProbs),
    ...(opts.mode === "segment"
      ? { mask: pasteMask(masks[i], p.box, opts.width, opts.height, opts.convention) }
      : {}),
  }));
  return { objects, skipped: parsed.skipped, texts: parsed.texts };
}
