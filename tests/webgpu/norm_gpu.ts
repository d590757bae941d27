import { layernorm, rmsnorm } from "../../lib/webgpu/ops.ts";
import { layernormRef, rmsnormRef } from "./cpu_reference.ts";
import { assertClose, gpuTest, maxAbs, Rng } from "./gpu_test_util.ts";

/** Tolerance: max abs err <= 2e-5 · max|ref| (f32 reductions over <= 1152 values). */
const REL_TOL = 2e-5;

const SIZES = [[1, 1], [3, 257], [7, 1152], [2, 2304]];

SIZES.forEach(([rows, dim], idx) => {
  gpuTest(`webgpu rmsnorm ${rows}×${dim}`, async (r) => {
    const rng = new Rng(200 + idx);
    const x = rng.uniform(rows * dim, -3, 3);
    const w = rng.uniform(dim, -1, 1);
    const out = r.zeros(rows * dim);
    await rmsnorm(r, { x: r.tensor(x), w: r.tensor(w), out, rows, dim, eps: 1e-6 });
    const want = rmsnormRef(x, w, rows, dim, 1e-6);
    assertClose(await r.read(out), want, REL_TOL * maxAbs(want), `rmsnorm (${rng.tag})`);
  });

  gpuTest(`webgpu layernorm ${rows}×${dim}`, async (r) => {
    const rng = new Rng(210 + idx);
    // An offset mean checks the two-pass variance.
    const x = rng.uniform(rows * dim, 2, 8);
    const w = rng.uniform(dim, -2, 2);
    const b = rng.uniform(dim, -1, 1);
    const out = r.zeros(rows * dim);
    await layernorm(r, { x: r.tensor(x), w: r.tensor(w), b: r.tensor(b), out, rows, dim });
    const want = layernormRef(x, w, b, rows, dim, 1e-6);
    assertClose(await r.read(out), want, REL_TOL * maxAbs(want), `layernorm (${rng.tag})`);
  });
});
