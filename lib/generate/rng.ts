/**
 * A small seeded PRNG (xoshiro128**, seeded through splitmix32) so sampling is reproducible.
 * @module
 */

/** A source of uniform numbers in [0, 1). */
export interface Rng {
  /** The next uniform number in [0, 1). */
  next(): number;
}

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** xoshiro128** with 128 bits of state. */
class Xoshiro128 implements Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream: number) {
    // Mix the seed (any safe integer) and the stream number into the splitmix state.
    const st = { s: (seed | 0) ^ Math.imul(Math.floor(seed / 2 ** 32) | 0, 0x632be5ab) };
    st.s = (st.s ^ Math.imul(stream + 1, 0x27d4eb2d)) | 0;
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  next(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r / 2 ** 32;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * A generator for `seed` and an independent `stream` (e.g. the index of the image being
 * described), so an image's samples do not depend on which other images share its batch.
 */
export function seededRng(seed: number, stream = 0): Rng {
  return new Xoshiro128(seed, stream);
}
