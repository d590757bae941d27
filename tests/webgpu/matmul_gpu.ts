import { matmul } from "../../lib/webgpu/ops.ts";
import { matmulRef } from "./cpu_reference.ts";
import { assertClose, gpuTest, maxAbs, Rng } from "./gpu_test_util.ts";

/** Tolerance: max abs err <= 1e-4 · max|ref| (f32 accumulation over K <= 300). */
const REL_TOL = 1e-4;

const CASES: {
  m: number;
  n: number;
  k: number;
  bias: boolean;
  path: "tiled" | "matvec" | "auto";
}[] = [
  { m: 1, n: 1, k: 1, bias: false, path: "tiled" },
  { m: 37, n: 53, k: 29, bias: true, path: "tiled" },
  { m: 64, n: 64, k: 64, bias: false, path: "tiled" },
  { m: 130, n: 70, k: 131, bias: true, path: "tiled" },
  { m: 5, n: 129, k: 300, bias: true, path: "auto" },
  { m: 1, n: 300, k: 256, bias: true, path: "matvec" },
  { m: 1, n: 7, k: 4, bias: false, path: "matvec" },
  { m: 3, n: 261, k: 148, bias: false, path: "auto" },
  { m: 1, n: 45, k: 63, bias: true, path: "auto" },
];

CASES.forEach((c, idx) => {
  gpuTest(`webgpu matmul ${c.path} ${c.m}×${c.n}×${c.k}${c.bias ? " +bias" : ""}`, async (r) => {
    const rng = new Rng(100 + idx);
    const a = rng.uniform(c.m * c.k);
    const w = rng.uniform(c.n * c.k);
    const bias = c.bias ? rng.uniform(c.n) : null;
    const out = r.zeros(c.m * c.n);
    await matmul(r, {
      a: r.tensor(a),
      w: r.tensor(w),
      bias: bias ? r.tensor(bias) : undefined,
      out,
      m: c.m,
      n: c.n,
      k: c.k,
      path: c.path,
    });
    const want = matmulRef(a, w, bias, c.m, c.n, c.k);
    assertClose(await r.read(out), want, REL_TOL * maxAbs(want), `matmul (${rng.tag})`);
  });
});
