import assert from "node:assert/strict";
import { fromFloat32, toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { bytesToWords, transposeWeight } from "../../lib/webgpu/weights.ts";
import { gpuTest, Rng } from "./gpu_test_util.ts";

/** Halves back from packed words. */
function halves(words: Uint32Array, count: number): Float32Array {
  return toFloat32(new Uint8Array(words.buffer, words.byteOffset, 2 * count), "F16");
}

const CASES: [number, number, boolean, "f32" | "f16"][] = [
  [1, 1, false, "f32"],
  [37, 53, false, "f32"],
  [64, 300, true, "f32"],
  [40, 33, true, "f16"],
  [96, 129, false, "f16"],
];

CASES.forEach(([k, n, srcF16, format], idx) => {
  const what = `${srcF16 ? "f16" : "f32"} [${k}, ${n}] → ${format} [${n}, ${k}]`;
  gpuTest(`webgpu transpose ${what}`, async (r) => {
    const rng = new Rng(1400 + idx);
    const x = rng.uniform(k * n, -3, 3);
    const srcBytes = fromFloat32(x, srcF16 ? "F16" : "F32");
    const values = toFloat32(srcBytes, srcF16 ? "F16" : "F32");
    const w = await transposeWeight(r, r.tensor(bytesToWords(srcBytes)), k, n, srcF16, format);
    assert.equal(w.n, n);
    assert.equal(w.k, k);
    const words = await r.readU32(w.data);
    const got = format === "f16" ? halves(words, n * k) : new Float32Array(words.buffer, 0, n * k);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) {
        const want = values[j * n + i];
        const g = got[i * k + j];
        // Exact, except f32 → f16, which may round either way: within one f16 ulp (relative for
        // normal halves, a fixed 2^-24 for subnormal ones, |x| < 2^-14).
        const tol = format === "f16" && !srcF16 ? Math.max(Math.abs(want) * 2 ** -10, 2 ** -24) : 0;
        if (!(Math.abs(g - want) <= tol)) {
          assert.fail(`transpose ${what}: [${i}, ${j}] is ${g}, want ${want} (${rng.tag})`);
        }
      }
    }
  });
});
