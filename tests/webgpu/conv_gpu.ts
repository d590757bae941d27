import { conv2d, convTranspose } from "../../lib/webgpu/ops.ts";
import { conv2dRef, convTransposeRef } from "./cpu_reference.ts";
import { assertClose, gpuTest, maxAbs, Rng } from "./gpu_test_util.ts";

/** Tolerance: max abs err <= 1e-5 · max|ref| · (terms per output)^0.5 (f32 sums of <= 300 terms). */
function tol(want: ArrayLike<number>, terms: number): number {
  return 1e-6 * Math.sqrt(terms) * Math.max(1, maxAbs(want)) * 10;
}

const CONV = [
  { N: 1, H: 4, W: 4, I: 8, O: 8, k: 3, pad: 1, relu: true },
  { N: 2, H: 5, W: 3, I: 7, O: 9, k: 3, pad: 1, relu: false },
  { N: 2, H: 4, W: 4, I: 32, O: 5, k: 1, pad: 0, relu: true },
  { N: 1, H: 6, W: 6, I: 1, O: 1, k: 1, pad: 0, relu: false },
];

CONV.forEach((c, idx) => {
  gpuTest(
    `webgpu conv2d ${c.k}×${c.k} pad ${c.pad} ${c.N}×${c.H}×${c.W}×${c.I}→${c.O}${
      c.relu ? " +relu" : ""
    }`,
    async (r) => {
      const rng = new Rng(400 + idx);
      const x = rng.uniform(c.N * c.H * c.W * c.I);
      const w = rng.uniform(c.O * c.I * c.k * c.k);
      const b = rng.uniform(c.O);
      const { y, OH, OW } = conv2dRef(x, w, b, c);
      const want = c.relu ? y.map((v) => Math.max(v, 0)) : y;
      const out = r.zeros(c.N * OH * OW * c.O);
      await conv2d(r, {
        x: r.tensor(x),
        w: r.tensor(w),
        bias: r.tensor(b),
        out,
        batch: c.N,
        height: c.H,
        width: c.W,
        cin: c.I,
        cout: c.O,
        k: c.k,
        pad: c.pad,
        relu: c.relu,
      });
      assertClose(await r.read(out), want, tol(want, c.I * c.k * c.k), `conv2d (${rng.tag})`);
    },
  );
});

const CONVT = [
  { N: 1, H: 4, W: 4, I: 8, O: 8, relu: true },
  { N: 2, H: 3, W: 5, I: 6, O: 4, relu: false },
  { N: 1, H: 8, W: 8, I: 16, O: 1, relu: true },
];

CONVT.forEach((c, idx) => {
  gpuTest(
    `webgpu conv_transpose 4×4 s2 p1 ${c.N}×${c.H}×${c.W}×${c.I}→${c.O}${c.relu ? " +relu" : ""}`,
    async (r) => {
      const rng = new Rng(420 + idx);
      const dims = { ...c, k: 4, pad: 1, stride: 2 };
      const x = rng.uniform(c.N * c.H * c.W * c.I);
      const w = rng.uniform(c.I * c.O * 16);
      const b = rng.uniform(c.O);
      const { y, OH, OW } = convTransposeRef(x, w, b, dims);
      if (OH !== 2 * c.H || OW !== 2 * c.W) throw new Error("4×4 s2 p1 must double the size");
      const want = c.relu ? y.map((v) => Math.max(v, 0)) : y;
      const out = r.zeros(c.N * OH * OW * c.O);
      await convTranspose(r, {
        x: r.tensor(x),
        w: r.tensor(w),
        bias: r.tensor(b),
        out,
        batch: c.N,
        height: c.H,
        width: c.W,
        cin: c.I,
        cout: c.O,
        k: 4,
        pad: 1,
        stride: 2,
        relu: c.relu,
      });
      assertClose(await r.read(out), want, tol(want, c.I * 4), `conv_transpose (${rng.tag})`);
    },
  );
});
