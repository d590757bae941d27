import { fromFloat32, toFloat32 } from "../../lib/checkpoint/dtype.ts";
import {
  dequantizeRows,
  packZeroPoints,
  quantizeRows,
  type QuantScheme,
} from "../../lib/convert/quantize.ts";
import { embedRows } from "../../lib/webgpu/ops_embed.ts";
import {
  f16Weight,
  f32Weight,
  type GpuWeight,
  quantWeight,
  type ZeroLayout,
} from "../../lib/webgpu/weights.ts";
import { assertCloseEach, gpuTest, Rng } from "./gpu_test_util.ts";

interface Case {
  fmt: "f32" | "f16" | "q8" | "q4";
  v: number;
  d: number;
  rows: number;
  bs?: number;
  asym?: boolean;
  zl?: ZeroLayout;
}

const CASES: Case[] = [
  { fmt: "f32", v: 37, d: 12, rows: 5 },
  { fmt: "f16", v: 50, d: 48, rows: 7 },
  { fmt: "q8", v: 41, d: 48, rows: 6, bs: 16 },
  { fmt: "q8", v: 29, d: 100, rows: 3, bs: 32, asym: true, zl: "bytes" },
  { fmt: "q4", v: 33, d: 80, rows: 4, bs: 32, asym: true, zl: "nibbles" },
  { fmt: "q4", v: 17, d: 96, rows: 9, bs: 16, asym: true, zl: "bytes" },
  { fmt: "q4", v: 23, d: 64, rows: 2, bs: 32 },
];

CASES.forEach((c, idx) => {
  const opts = [c.bs ? `bs${c.bs}` : "", c.zl ?? ""].filter(Boolean).join(" ");
  gpuTest(`webgpu embedRows ${c.fmt} ${c.rows} ids of [${c.v}, ${c.d}] ${opts}`, async (r) => {
    const rng = new Rng(2000 + idx);
    const w = rng.uniform(c.v * c.d);
    let gw: GpuWeight;
    let values: Float32Array;
    if (c.fmt === "f32") {
      gw = f32Weight(r, w, c.v, c.d);
      values = w;
    } else if (c.fmt === "f16") {
      const bytes = fromFloat32(w, "F16");
      gw = f16Weight(r, bytes, c.v, c.d);
      values = toFloat32(bytes, "F16");
    } else {
      const bits = c.fmt === "q8" ? 8 : 4;
      const s: QuantScheme = { bits, blockSize: c.bs!, asymmetric: c.asym ?? false };
      const q = quantizeRows(w, c.v, c.d, s);
      const blocks = Math.ceil(c.d / s.blockSize);
      const zeros = q.zeros && c.zl === "nibbles"
        ? packZeroPoints(q.zeros, c.v, blocks, bits)
        : q.zeros;
      gw = quantWeight(r, { ...q, zeros }, c.v, c.d, bits, s.blockSize, c.zl);
      values = dequantizeRows(q, c.v, c.d, s);
    }
    // Random ids, one past the table (a zero row) and the last row.
    const ids = Uint32Array.from({ length: c.rows }, () => Math.floor(rng.next() * c.v));
    ids[0] = c.v;
    ids[c.rows - 1] = c.v - 1;
    const out = r.zeros(c.rows * c.d);
    await embedRows(r, { table: gw, ids: r.tensor(ids), out, rows: c.rows });
    const want = new Float64Array(c.rows * c.d);
    ids.forEach((id, i) => {
      if (id < c.v) want.set(values.subarray(id * c.d, (id + 1) * c.d), i * c.d);
    });
    const tol = Float64Array.from(want, (v) => 1e-6 * Math.abs(v) + 1e-7);
    assertCloseEach(await r.read(out), want, tol, `embedRows ${c.fmt} (${rng.tag})`);
  });
});
