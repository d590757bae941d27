/**
 * The WebGPU backend's choice of device storage per Linear weight (lib/webgpu/model_weights.ts
 * `hostMatrix`): F16 / BF16 checkpoint tensors become f16 with the same values (BF16 → f16 is
 * exact within f16's range), F32 stays f32, and a value beyond f16's range keeps f32. CPU only.
 */
import assert from "node:assert/strict";
import { fromFloat32, toFloat32 } from "../../lib/checkpoint/dtype.ts";
import type { DType, TensorRef } from "../../lib/checkpoint/tensor.ts";
import type { ConvertSource } from "../../lib/convert/source.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import { hostMatrix } from "../../lib/webgpu/model_weights.ts";

function source(name: string, values: Float32Array, dtype: DType, n: number, k: number) {
  const bytes = fromFloat32(values, dtype as "F32" | "F16" | "BF16");
  const ref: TensorRef = {
    name,
    dtype,
    shape: [n, k],
    byteLength: bytes.length,
    read: (o = 0, l = bytes.length - o) => Promise.resolve(bytes.slice(o, o + l)),
  };
  const src: ConvertSource = {
    path: "test",
    config: {} as PaliGemmaConfig,
    tensors: new Map([[name, ref]]),
  };
  return { src, stored: toFloat32(bytes, dtype) };
}

function values(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31 - 0.5) * 4;
  });
}

for (const dtype of ["F16", "BF16"] as const) {
  Deno.test(`webgpu storage: a ${dtype} matrix goes to the device as f16, same values`, async () => {
    const { src, stored } = source("w", values(6 * 8, 7), dtype, 6, 8);
    const h = await hostMatrix(src, "w", 6, 8);
    assert.equal(h.format, "f16");
    if (h.format !== "f16") return;
    assert.deepEqual(toFloat32(h.halves, "F16"), stored);
  });
}

Deno.test("webgpu storage: F32 stays f32; BF16 beyond f16's range stays f32", async () => {
  const f32 = source("w", values(4 * 4, 3), "F32", 4, 4);
  assert.equal((await hostMatrix(f32.src, "w", 4, 4)).format, "f32");
  const big = values(4 * 4, 5);
  big[3] = 1e6;
  const bf = source("w", big, "BF16", 4, 4);
  const h = await hostMatrix(bf.src, "w", 4, 4);
  assert.equal(h.format, "f32");
  if (h.format === "f32") assert.deepEqual(h.values, bf.stored);
});
