/**
 * q8 / q4 store the vision tower "fp16-as-fp32" (rounded to fp16, written as fp32, so ONNX
 * Runtime has no Cast to fold at load): the image features must be bit-identical to the same
 * weights stored as fp16 + Cast, and the graph must hold no Cast and no fp16 weight.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertModel, PRECISION_SUFFIX } from "../../lib/convert/convert.ts";
import { OnnxModel } from "./onnx_runner.ts";
import { memorySource, normalRng, randomWeights, tinyConfig } from "./synthetic.ts";

Deno.test("convert q8: vision fp16-as-fp32 gives the fp16 storage's features exactly", async () => {
  const cfg = tinyConfig(1);
  const src = memorySource(cfg, randomWeights(cfg, 301));
  const rnd = normalRng(7);
  const s = cfg.vision.imageSize;
  const px = Float32Array.from({ length: 3 * s * s }, () => Math.tanh(rnd()));
  const features = async (vision: "fp16" | "fp16-as-fp32") => {
    const dir = await Deno.makeTempDir({ prefix: "pg-vision-storage-" });
    try {
      await convertModel(src, dir, { precision: "q8", quant: { vision } });
      const graph = await Deno.readFile(
        join(dir, "onnx", `vision_encoder${PRECISION_SUFFIX.q8}.onnx`),
      );
      const m = await OnnxModel.load(dir, PRECISION_SUFFIX.q8, cfg);
      try {
        return { graph, out: await m.imageFeatures(px, 1) };
      } finally {
        await m.release();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  };
  const half = await features("fp16");
  const wide = await features("fp16-as-fp32");
  assert.deepEqual(wide.out, half.out);
  const text = new TextDecoder("latin1").decode(wide.graph);
  assert.ok(!text.includes("Cast"), "no Cast left for ONNX Runtime to fold");
  assert.ok(new TextDecoder("latin1").decode(half.graph).includes("Cast"));
});
