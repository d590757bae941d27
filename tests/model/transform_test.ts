import assert from "node:assert/strict";
import { deriveTensor, permuteBytes } from "../../lib/checkpoint/transform.ts";
import type { TensorRef } from "../../lib/checkpoint/tensor.ts";

/** Reference permutation: visits every output element and computes its input offset directly. */
function naivePermute(
  src: Uint8Array,
  shape: number[],
  perm: number[],
  elem: number,
): Uint8Array {
  const outShape = perm.map((p) => shape[p]);
  const inStrides = shape.map((_, a) => shape.slice(a + 1).reduce((x, y) => x * y, 1));
  const total = shape.reduce((x, y) => x * y, 1);
  const out = new Uint8Array(src.length);
  for (let o = 0; o < total; o++) {
    let rest = o;
    let inOff = 0;
    for (let k = outShape.length - 1; k >= 0; k--) {
      const c = rest % outShape[k];
      rest = Math.floor(rest / outShape[k]);
      inOff += c * inStrides[perm[k]];
    }
    for (let b = 0; b < elem; b++) out[o * elem + b] = src[inOff * elem + b];
  }
  return out;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

Deno.test("permuteBytes matches a direct index computation for random shapes, perms, widths", () => {
  const r = rng(12345);
  for (let trial = 0; trial < 300; trial++) {
    const rank = 1 + Math.floor(r() * 5);
    const shape = Array.from({ length: rank }, () => 1 + Math.floor(r() * 5));
    const perm = shape.map((_, i) => i);
    for (let i = rank - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const elem = [1, 2, 3, 4, 8][Math.floor(r() * 5)];
    const n = shape.reduce((x, y) => x * y, 1) * elem;
    const src = Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
    assert.deepEqual(
      permuteBytes(src, shape, perm, elem),
      naivePermute(src, shape, perm, elem),
      `shape [${shape}] perm [${perm}] elem ${elem}`,
    );
  }
});

Deno.test("permuteBytes: large 2-d transpose (blocked path) and unaligned input", () => {
  const rows = 131;
  const cols = 77;
  const src = new Uint8Array(rows * cols * 2 + 1);
  for (let i = 0; i < src.length; i++) src[i] = (i * 31 + 7) & 255;
  const view = src.subarray(1); // odd byteOffset: not aligned for 2-byte words
  const got = permuteBytes(view, [rows, cols], [1, 0], 2);
  assert.deepEqual(got, naivePermute(view, [rows, cols], [1, 0], 2));
});

Deno.test("permuteBytes rejects a bad permutation or byte count", () => {
  assert.throws(() => permuteBytes(new Uint8Array(6), [2, 3], [0, 0], 1), RangeError);
  assert.throws(() => permuteBytes(new Uint8Array(5), [2, 3], [1, 0], 1), RangeError);
});

Deno.test("deriveTensor reads only the selected block and permutes it", async () => {
  // A [3, 2, 4] U8 source whose element value is its flat index.
  const data = Uint8Array.from({ length: 24 }, (_, i) => i);
  const reads: [number, number][] = [];
  const src: TensorRef = {
    name: "src",
    dtype: "U8",
    shape: [3, 2, 4],
    byteLength: 24,
    read(offset = 0, length = 24 - offset) {
      reads.push([offset, length]);
      return Promise.resolve(data.slice(offset, offset + length));
    },
  };
  const t = deriveTensor("t", src, { index: [2, 1], shape: [4] });
  assert.deepEqual([...await t.read()], [20, 21, 22, 23]);
  assert.deepEqual([...await t.read(1, 2)], [21, 22]);
  const tr = deriveTensor("tr", src, { index: [1], perm: [1, 0], shape: [4, 2] });
  assert.deepEqual([...await tr.read()], [8, 12, 9, 13, 10, 14, 11, 15]);
  assert.deepEqual(reads.at(-1), [8, 8]);
  assert.deepEqual([...await tr.read(2, 3)], [9, 13, 10]);
  assert.throws(() => deriveTensor("bad", src, { index: [3], shape: [8] }), RangeError);
});
