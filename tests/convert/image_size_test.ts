/**
 * The vision graph at other image sizes than the fixtures' (the position-embedding table and the
 * number of image tokens follow the size, as 224/448/896 px do at full size): features against the
 * float64 reference, and the size recorded in the folder's configs.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertModel } from "../../lib/convert/convert.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import { refVision } from "../reference_forward.ts";
import { OnnxModel, relErr } from "./onnx_runner.ts";
import { memorySource, normalRng, randomWeights, tinyConfig } from "./synthetic.ts";

for (const size of [42, 70]) {
  Deno.test(`convert fp32 at ${size} px: image features match the float64 reference`, async () => {
    const base = tinyConfig(2);
    const tokens = (size / base.vision.patchSize) ** 2;
    const cfg: PaliGemmaConfig = {
      ...base,
      vision: { ...base.vision, imageSize: size },
      numImageTokens: tokens,
    };
    const w = randomWeights(cfg, 300 + size);
    const dir = await Deno.makeTempDir({ prefix: "pg-size-" });
    try {
      await convertModel(memorySource(cfg, w), dir, { precision: "fp32" });
      const pre = JSON.parse(await Deno.readTextFile(join(dir, "preprocessor_config.json")));
      assert.equal(pre.image_seq_length, tokens);
      assert.deepEqual(pre.size, { height: size, width: size });
      const conf = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
      assert.equal(conf.num_image_tokens, tokens);

      const rnd = normalRng(size);
      const px = Float32Array.from({ length: 2 * 3 * size * size }, () => Math.tanh(rnd()));
      const m = await OnnxModel.load(dir, "", cfg);
      const feats = await m.imageFeatures(px, 2);
      const d = cfg.text.hiddenSize;
      const per = 3 * size * size;
      const want = new Float64Array(2 * tokens * d);
      for (let b = 0; b < 2; b++) {
        const one = refVision(cfg, (n) => w.get(n)!, px.subarray(b * per, (b + 1) * per));
        want.set(one.map((x) => x / Math.sqrt(d)), b * tokens * d);
      }
      const err = relErr(feats, want);
      console.log(
        `  ${size} px (${tokens} tokens, batch 2): features rel err ${err.toExponential(2)}`,
      );
      assert(err < 1e-4, `features rel err ${err}`);
      await m.release();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
