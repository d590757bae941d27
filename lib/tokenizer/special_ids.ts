/**
 * Looks up the `<locNNNN>` and `<segNNN>` id ranges in a vocabulary and checks they are contiguous.
 * @module
 */

import { InputError } from "../errors.ts";

/** Number of `<locNNNN>` tokens. */
export const LOC_COUNT = 1024;
/** Number of `<segNNN>` tokens. */
export const SEG_COUNT = 128;

/** The `<locNNNN>` token for `n` (0..1023). */
export function locToken(n: number): string {
  return `<loc${String(n).padStart(4, "0")}>`;
}

/** The `<segNNN>` token for `n` (0..127). */
export function segToken(n: number): string {
  return `<seg${String(n).padStart(3, "0")}>`;
}

/**
 * Returns the id of `name(0)`, after checking `name(n)` is that id + n for every n < count; -1 when
 * `name(0)` is not in the vocabulary. Throws `InputError` naming `path` if the range has holes.
 */
export function contiguousBase(
  lookup: (token: string) => number | undefined,
  name: (n: number) => string,
  count: number,
  path: string,
): number {
  const base = lookup(name(0));
  if (base === undefined) return -1;
  for (let n = 1; n < count; n++) {
    const id = lookup(name(n));
    if (id !== base + n) {
      throw new InputError(
        `${path}: ${name(n)} has id ${id ?? "none"}, expected ${base + n} (${name(0)} is ${base})`,
      );
    }
  }
  return base;
}
