/**
 * The two conventions for turning loc tokens into pixel boxes (and, in lib/mask, masks):
 * `big_vision` (the evaluator: loc/1023, truncated to pixels) and `hf-demo` (the HF Space demo:
 * loc/1024, rounded half to even as Python's `round`).
 * @module
 */

import { InvalidValue } from "../errors.ts";

/** Which reference's rules map tokens to pixels. */
export type Convention = "big_vision" | "hf-demo";

/** Every convention, default first. */
export const CONVENTIONS: readonly Convention[] = ["big_vision", "hf-demo"];

/** A box in pixels of the original image (x2, y2 exclusive) or normalised to [0, 1]. */
export interface Box {
  /** Left. */
  readonly x1: number;
  /** Top. */
  readonly y1: number;
  /** Right (exclusive in pixels). */
  readonly x2: number;
  /** Bottom (exclusive in pixels). */
  readonly y2: number;
}

/** A box in pixels and its normalised coordinates. */
export interface PlacedBox {
  /** Integer pixel coordinates in the original image. */
  readonly box: Box;
  /** The loc values divided by the convention's denominator. */
  readonly normalized: Box;
}

/** A convention name that is not one of {@link CONVENTIONS}. */
export class UnknownConvention extends InvalidValue {
  /** Creates the error for the name `value`. */
  constructor(readonly value: string) {
    super(`unknown box convention '${value}' (expected ${CONVENTIONS.join(" or ")})`);
    this.name = "UnknownConvention";
  }
}

/** The convention named `value` (default `big_vision`); UnknownConvention for other names. */
export function parseConvention(value: string | undefined): Convention {
  if (value === undefined) return "big_vision";
  if ((CONVENTIONS as readonly string[]).includes(value)) return value as Convention;
  throw new UnknownConvention(value);
}

/** Python's `round()` of a float: nearest integer, ties to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Maps loc values (y_min, x_min, y_max, x_max) to a box in a `width`×`height` image. */
export function placeBox(
  loc: readonly [number, number, number, number],
  width: number,
  height: number,
  convention: Convention,
): PlacedBox {
  const denom = convention === "big_vision" ? 1023 : 1024;
  const [y1, x1, y2, x2] = loc.map((v) => v / denom);
  const px = convention === "big_vision" ? Math.trunc : roundHalfEven;
  return {
    box: { x1: px(x1 * width), y1: px(y1 * height), x2: px(x2 * width), y2: px(y2 * height) },
    normalized: { x1, y1, x2, y2 },
  };
}
