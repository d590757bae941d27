import { fromFloat32, toFloat32 } from "../../lib/checkpoint/dtype.ts";
import {
  dequantizeRows,
  packZeroPoints,
  quantizeRows,
  type QuantScheme,
} from "../../lib/convert/quantize.ts";
import {
  gemm,
  type GemmActivation,
  type GemmPrecision,
  type GemmTile,
} from "../../lib/webgpu/ops_gemm.ts";
import type { GpuRunner } from "../../lib/webgpu/runner.ts";
import {
  f16Weight,
  f32Weight,
  type GpuWeight,
  quantWeight,
  type ZeroLayout,
} from "../../lib/webgpu/weights.ts";
import { geluTanh, matmulRef, rmsnormRef } from "./cpu_reference.ts";
import { assertCloseEach, gpuTest, Rng } from "./gpu_test_util.ts";
import { findGpuAdapter } from "../../lib/webgpu/device.ts";

const adapter = await findGpuAdapter();
const SHADER_F16 = adapter?.features.has("shader-f16") ?? false;
const ADAPTER = adapter?.info.description || adapter?.info.vendor || "no adapter";

/**
 * Tolerance per output: |err| <= 1e-5 · (Σ_k |a_k w_k| + |bias| + |residual|) + 1e-6 (f32
 * products and sums; the float64 reference uses the same stored weight values).
 */
const REL_TOL = 1e-5;

interface Case {
  fmt: "f32" | "f16" | "q8" | "q4";
  m: number;
  n: number;
  k: number;
  bs?: number;
  asym?: boolean;
  zl?: ZeroLayout;
  bias?: boolean;
  res?: boolean;
  norm?: boolean;
  act?: GemmActivation;
  tile?: GemmTile;
  precision?: GemmPrecision;
}

const CASES: Case[] = [
  { fmt: "f32", m: 1, n: 1, k: 1 },
  { fmt: "f32", m: 37, n: 53, k: 29, bias: true },
  { fmt: "f32", m: 64, n: 64, k: 64 },
  { fmt: "f32", m: 130, n: 70, k: 131, bias: true, act: "gelu_tanh", res: true },
  { fmt: "f32", m: 33, n: 65, k: 96, norm: true, res: true },
  { fmt: "f16", m: 45, n: 31, k: 58, bias: true },
  { fmt: "f16", m: 9, n: 100, k: 40, norm: true, act: "gelu_tanh" },
  { fmt: "q8", m: 21, n: 45, k: 48, bs: 16, bias: true },
  { fmt: "q8", m: 70, n: 33, k: 100, bs: 32, asym: true, zl: "bytes" },
  { fmt: "q4", m: 66, n: 51, k: 80, bs: 32, asym: true, zl: "nibbles", norm: true, res: true },
  { fmt: "q4", m: 5, n: 17, k: 72, bs: 16, asym: false },
  // Other tile shapes than llvmpipe's default 8×8×8 (the GPU default is 16×16×16).
  { fmt: "f32", m: 70, n: 130, k: 77, norm: true, bias: true, tile: { tx: 16, ty: 8, tk: 8 } },
  { fmt: "q8", m: 100, n: 40, k: 64, bs: 32, act: "gelu_tanh", tile: { tx: 8, ty: 16, tk: 4 } },
  // gemm_h.wgsl's code path with f32 in place of f16 (any adapter) ...
  { fmt: "f32", m: 37, n: 70, k: 45, bias: true, res: true, precision: "f16-logic" },
  {
    fmt: "q4",
    m: 40,
    n: 33,
    k: 64,
    bs: 32,
    asym: true,
    zl: "nibbles",
    norm: true,
    act: "gelu_tanh",
    precision: "f16-logic",
  },
  // ... and with f16 arithmetic, where the adapter has shader-f16.
  { fmt: "f16", m: 70, n: 65, k: 130, bias: true, res: true, precision: "f16" },
  { fmt: "q8", m: 33, n: 40, k: 96, bs: 32, norm: true, act: "gelu_tanh", precision: "f16" },
];

/**
 * Tolerance of f16 arithmetic: 4e-3 · Σ|a·w| (f16 inputs and TK-term f16 sums, about 2^-11
 * relative per rounding, summed in f32).
 */
const F16_TOL = 4e-3;

function upload(r: GpuRunner, c: Case, w: Float32Array): { gw: GpuWeight; values: Float32Array } {
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
    c.act ?? "",
    c.tile ? `tile ${c.tile.tx}×${c.tile.ty}×${c.tile.tk}` : "",
    c.precision ? `${c.precision} arithmetic` : "",
  ].filter(Boolean).join(" ");
  const name = `webgpu gemm ${c.fmt} ${c.m}×${c.n}×${c.k} ${opts}`;
  if (c.precision === "f16" && !SHADER_F16) {
    Deno.test({
      name: `${name} (skipped: the adapter has no shader-f16, ${ADAPTER})`,
      ignore: true,
      fn: () => {},
    });
    return;
  }
  gpuTest(name, async (r) => {
    const rng = new Rng(1200 + idx);
    const w = rng.uniform(c.n * c.k);
    const a = rng.uniform(c.m * c.k, -2, 2);
    const bias = c.bias ? rng.uniform(c.n) : null;
    const res = c.res ? rng.uniform(c.m * c.n) : null;
    const gain = c.norm ? rng.uniform(c.k, -0.5, 0.5) : null;
    const { gw, values } = upload(r, c, w);
    const out = r.zeros(c.m * c.n);
    await gemm(r, {
      a: r.tensor(a),
      w: gw,
      out,
      m: c.m,
      bias: bias ? r.tensor(bias) : undefined,
      residual: res ? r.tensor(res) : undefined,
      norm: gain ? { gain: r.tensor(gain), eps: 1e-6 } : undefined,
      activation: c.act,
      tile: c.tile,
      precision: c.precision,
    });
    const ain = gain ? rmsnormRef(a, gain, c.m, c.k, 1e-6) : a;
    const want = matmulRef(ain, values, bias, c.m, c.n, c.k);
    const mag = matmulRef(
      Float64Array.from(ain, Math.abs),
      Float64Array.from(values, Math.abs),
      bias ? Float64Array.from(bias, Math.abs) : null,
      c.m,
      c.n,
      c.k,
    );
    for (let i = 0; i < want.length; i++) {
      if (c.act === "gelu_tanh") want[i] = geluTanh(want[i]);
      if (res) {
        want[i] += res[i];
        mag[i] += Math.abs(res[i]);
      }
    }
    const rel = c.precision === "f16" ? F16_TOL : REL_TOL;
    const tol = Float64Array.from(mag, (v) => rel * v + 1e-6);
    assertCloseEach(await r.read(out), want, tol, `gemm ${c.fmt} (${rng.tag})`);
  });
});
