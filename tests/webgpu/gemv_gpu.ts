import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { fromFloat32 } from "../../lib/checkpoint/dtype.ts";
import {
  dequantizeRows,
  packZeroPoints,
  quantizeRows,
  type QuantScheme,
} from "../../lib/convert/quantize.ts";
import { gemv } from "../../lib/webgpu/ops_gemv.ts";
import {
  f16Weight,
  f32Weight,
  type GpuWeight,
  quantWeight,
  type ZeroLayout,
} from "../../lib/webgpu/weights.ts";
import { geluTanh, matmulRef, rmsnormRef } from "./cpu_reference.ts";
import { assertCloseEach, gpuTest, Rng } from "./gpu_test_util.ts";

/**
 * Tolerance per output: |err| <= 1e-5 · Σ_k |x_k w_k| + 1e-6 (f32 products and sums over k,
 * the reference in float64 over the same stored weight values: rounded to f16, or dequantised).
 */
const REL_TOL = 1e-5;

interface Case {
  fmt: "f32" | "f16" | "q8" | "q4";
  n: number;
  k: number;
  m: number;
  bs?: number;
  asym?: boolean;
  zl?: ZeroLayout;
  bias?: boolean;
  res?: boolean;
  norm?: boolean;
  glu?: boolean;
}

const CASES: Case[] = [
  { fmt: "f32", n: 1, k: 4, m: 1 },
  { fmt: "f32", n: 37, k: 132, m: 3, bias: true },
  { fmt: "f32", n: 300, k: 256, m: 6, res: true },
  { fmt: "f32", n: 61, k: 1028, m: 2, norm: true, bias: true },
  { fmt: "f16", n: 33, k: 72, m: 1 },
  { fmt: "f16", n: 129, k: 520, m: 4, res: true, norm: true },
  { fmt: "q8", n: 45, k: 48, m: 1, bs: 16 },
  { fmt: "q8", n: 70, k: 100, m: 5, bs: 32, bias: true },
  { fmt: "q8", n: 19, k: 160, m: 2, bs: 32, asym: true, zl: "bytes", norm: true },
  { fmt: "q4", n: 51, k: 80, m: 2, bs: 32, asym: true, zl: "nibbles", res: true },
  { fmt: "q4", n: 9, k: 40, m: 1, bs: 32, asym: true, zl: "nibbles" },
  { fmt: "q4", n: 17, k: 96, m: 3, bs: 16, asym: true, zl: "bytes", bias: true },
  { fmt: "q4", n: 130, k: 544, m: 4, bs: 32, asym: false, norm: true, res: true },
  { fmt: "f32", n: 2 * 37, k: 132, m: 3, glu: true, bias: true },
  { fmt: "q8", n: 2 * 61, k: 96, m: 5, bs: 16, glu: true, norm: true, res: true },
  { fmt: "q4", n: 2 * 300, k: 64, m: 1, bs: 32, asym: true, zl: "nibbles", glu: true },
];

function upload(
  r: Parameters<Parameters<typeof gpuTest>[1]>[0],
  c: Case,
  w: Float32Array,
): { gw: GpuWeight; values: Float32Array } {
  if (c.fmt === "f32") return { gw: f32Weight(r, w, c.n, c.k), values: w };
  if (c.fmt === "f16") {
    const bytes = fromFloat32(w, "F16");
    return { gw: f16Weight(r, bytes, c.n, c.k), values: toFloat32(bytes, "F16") };
  }
  const bits = c.fmt === "q8" ? 8 : 4;
  const s: QuantScheme = { bits, blockSize: c.bs!, asymmetric: c.asym ?? false };
  const q = quantizeRows(w, c.n, c.k, s);
  const blocks = Math.ceil(c.k / s.blockSize);
  const zeros = q.zeros && c.zl === "nibbles"
    ? packZeroPoints(q.zeros, c.n, blocks, bits)
    : q.zeros;
  const gw = quantWeight(r, { ...q, zeros }, c.n, c.k, bits, s.blockSize, c.zl);
  return { gw, values: dequantizeRows(q, c.n, c.k, s) };
}

CASES.forEach((c, idx) => {
  const opts = [
    c.bs ? `bs${c.bs}` : "",
    c.zl ?? "",
    c.bias ? "+bias" : "",
    c.res ? "+res" : "",
    c.norm ? "norm" : "",
    c.glu ? "glu" : "",
  ].filter(Boolean).join(" ");
  gpuTest(`webgpu gemv ${c.fmt} ${c.m}×${c.n}×${c.k} ${opts}`, async (r) => {
    const rng = new Rng(1000 + idx);
    const w = rng.uniform(c.n * c.k);
    const x = rng.uniform(c.m * c.k, -2, 2);
    const bias = c.bias ? rng.uniform(c.n) : null;
    const outCols = c.glu ? c.n / 2 : c.n;
    const res = c.res ? rng.uniform(c.m * outCols) : null;
    const gain = c.norm ? rng.uniform(c.k, -0.5, 0.5) : null;
    const { gw, values } = upload(r, c, w);
    const out = r.zeros(c.m * outCols);
    await gemv(r, {
      glu: c.glu,
      w: gw,
      x: r.tensor(x),
      out,
      m: c.m,
      bias: bias ? r.tensor(bias) : undefined,
      residual: res ? r.tensor(res) : undefined,
      norm: gain ? { gain: r.tensor(gain), eps: 1e-6 } : undefined,
    });
    const xin = gain ? rmsnormRef(x, gain, c.m, c.k, 1e-6) : x;
    const want = matmulRef(xin, values, bias, c.m, c.n, c.k);
    const absx = Float64Array.from(xin, Math.abs);
    const absw = Float64Array.from(values, Math.abs);
    const mag = matmulRef(absx, absw, null, c.m, c.n, c.k);
    let expect = want;
    let tol = Float64Array.from(mag, (v) => REL_TOL * v + 1e-6);
    if (c.glu) {
      // gelu_tanh(gate) · up: each factor's error scaled by the other's magnitude.
      const I = outCols;
      expect = new Float64Array(c.m * I);
      const bound = new Float64Array(c.m * I);
      for (let row = 0; row < c.m; row++) {
        for (let o = 0; o < I; o++) {
          const g = want[row * c.n + o];
          const u = want[row * c.n + I + o];
          expect[row * I + o] = geluTanh(g) * u;
          bound[row * I + o] = 1.2 * tol[row * c.n + o] * Math.abs(u) +
            (Math.abs(geluTanh(g)) + 1e-3) * tol[row * c.n + I + o] + 1e-6;
        }
      }
      tol = bound;
    }
    if (res) { for (let i = 0; i < expect.length; i++) expect[i] += res[i]; }
    assertCloseEach(await r.read(out), expect, tol, `gemv ${c.fmt} (${rng.tag})`);
  });
});
