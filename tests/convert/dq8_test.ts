/**
 * The optional q8 layout with DynamicQuantizeMatMul (`QuantOptions.matmul: "dq8"`): the per-column
 * 8-bit codes round-trip within half a step, and `linear` in that layout, run by ONNX Runtime,
 * matches a float64 product within the bound of the weight and (per-tensor uint8) activation
 * rounding.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { linear, quantizeColumnsU8, weightFormat } from "../../lib/convert/layers.ts";
import { OnnxModelWriter } from "../../lib/onnx/builder.ts";
import { DataType } from "../../lib/onnx/proto.ts";
import { normalRng } from "./synthetic.ts";

const [N, K, M] = [40, 96, 5];

function randomWeights(seed: number): Float32Array {
  const rng = normalRng(seed);
  const w = new Float32Array(N * K).map(() => rng() * 0.1);
  w[7 * K + 3] = 0.9; // one outlier row: its own scale must not affect the other rows
  return w;
}

Deno.test("dq8: per-column uint8 codes round-trip within half a step, transposed to [K,N]", () => {
  const w = randomWeights(1);
  const { codes, scales } = quantizeColumnsU8(w, N, K);
  assert.equal(codes.length, K * N);
  for (let r = 0; r < N; r++) {
    let amax = 0;
    for (let c = 0; c < K; c++) amax = Math.max(amax, Math.abs(w[r * K + c]));
    assert.ok(Math.abs(scales[r] - amax / 127) <= 1e-7 * amax, `scale of row ${r}`);
    for (let c = 0; c < K; c++) {
      const back = (codes[c * N + r] - 128) * scales[r];
      assert.ok(Math.abs(back - w[r * K + c]) <= scales[r] / 2 + 1e-7, `w[${r},${c}]`);
    }
  }
});

Deno.test("dq8: linear() as DynamicQuantizeMatMul against a float64 product", async () => {
  const w = randomWeights(2);
  const rng = normalRng(3);
  const x = new Float32Array(M * K).map(() => rng());
  const dir = await Deno.makeTempDir({ prefix: "pg-dq8-" });
  try {
    const path = join(dir, "dq8.onnx");
    const g = await OnnxModelWriter.create(path, { externalData: false });
    const input = g.input("x", DataType.FLOAT, [1, M, K]);
    const fmt = weightFormat("q8", { matmul: "dq8" });
    const y = await linear(g, input, "w", { shape: [N, K], data: w }, fmt, "mlp");
    g.output(y, "y", DataType.FLOAT, [1, M, N]);
    await g.finish();
    const s = await ort.InferenceSession.create(path);
    const r = await s.run({ x: new ort.Tensor("float32", x, [1, M, K]) });
    await s.release();
    const got = r.y.data as Float32Array;
    const { scales } = quantizeColumnsU8(w, N, K);
    // Per-tensor uint8 activations: step (max(x, 0) - min(x, 0)) / 255.
    let lo = 0;
    let hi = 0;
    for (const v of x) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    const dx = (hi - lo) / 255;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let ref = 0;
        let bound = 1e-4;
        for (let c = 0; c < K; c++) {
          const a = x[i * K + c];
          const b = w[j * K + c];
          ref += a * b;
          bound += Math.abs(b) * dx / 2 + Math.abs(a) * scales[j] / 2 + dx * scales[j] / 4;
        }
        const err = Math.abs(got[i * N + j] - ref);
        assert.ok(err <= bound, `y[${i},${j}] = ${got[i * N + j]}, want ${ref} ± ${bound}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
