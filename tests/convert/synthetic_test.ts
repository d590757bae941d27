/**
 * Converted graphs of tiny random PaliGemma 1 and 2 models against the float64 reference forward
 * (tests/reference_forward.ts): image features, prompt logits, KV-cache decode steps, a
 * left-padded batch, external data, and the quantised / fp16 precisions against fp32.
 */

import assert, { equal as assertEquals } from "node:assert/strict";
import { convertModel, PRECISION_SUFFIX } from "../../lib/convert/convert.ts";
import type { Precision } from "../../lib/convert/layers.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import { refDecoder, refVision } from "../reference_forward.ts";
import { argmaxRows, OnnxModel, relErr } from "./onnx_runner.ts";
import { memorySource, normalRng, randomWeights, tensorShapes, tinyConfig } from "./synthetic.ts";
import { dequantizeRows, quantizeRows } from "../../lib/convert/quantize.ts";
import { defaultQuant, linearRole } from "../../lib/convert/layers.ts";
import { fromFloat32, toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { EMBED } from "../../lib/convert/embed_graph.ts";
import { chooseInputScaling, scaleColumns } from "../../lib/convert/input_scaling.ts";

const TOL = 1e-4;

/** Reference logits for one unpadded row of ids (prompt = first `prefixLen` tokens). */
function refLogits(
  cfg: PaliGemmaConfig,
  w: Map<string, Float32Array>,
  ids: number[],
  pixels: Float32Array | null,
  prefixLen = ids.length,
): Float64Array {
  // Tiny PaliGemma 2 models are converted with the final soft-cap on, to test that path too.
  const d = cfg.text.hiddenSize;
  const get = (n: string) => w.get(n)!;
  const feats = pixels ? refVision(cfg, get, pixels) : new Float64Array(0);
  const table = get("language_model.model.embed_tokens.weight");
  const e = new Float64Array(ids.length * d);
  let img = 0;
  ids.forEach((id, i) => {
    for (let j = 0; j < d; j++) {
      e[i * d + j] = id === cfg.imageTokenIndex
        ? feats[img * d + j] / Math.sqrt(d)
        : table[id * d + j];
    }
    if (id === cfg.imageTokenIndex) img++;
  });
  const pos = ids.map((_, i) => i + 1);
  return refDecoder(cfg, get, e, pos, ids.map(() => 1), prefixLen, cfg.version === 2);
}

function randomPixels(cfg: PaliGemmaConfig, images: number, seed: number): Float32Array {
  const rnd = normalRng(seed);
  const s = cfg.vision.imageSize;
  return Float32Array.from({ length: images * 3 * s * s }, () => Math.tanh(rnd()));
}

function prompt(cfg: PaliGemmaConfig, text: number[]): number[] {
  return [...Array(cfg.numImageTokens).fill(cfg.imageTokenIndex), cfg.bosTokenId, ...text, 10];
}

for (const version of [1, 2] as const) {
  Deno.test(`convert fp32 PaliGemma ${version} tiny: graphs match the float64 reference`, async () => {
    const cfg = tinyConfig(version);
    const w = randomWeights(cfg, 100 + version);
    const dir = await Deno.makeTempDir({ prefix: "pg-convert-" });
    try {
      // PaliGemma 2 also exercises ONNX external data (threshold 0).
      const res = await convertModel(memorySource(cfg, w), dir, {
        precision: "fp32",
        externalDataBytes: version === 2 ? 0 : undefined,
        finalSoftcap: version === 2,
      });
      assertEquals(res.externalData.length, version === 2 ? 3 : 0);
      const m = await OnnxModel.load(dir, "", cfg);
      const v = cfg.text.vocabSize;
      const d = cfg.text.hiddenSize;

      // Image features (already divided by sqrt(D)).
      const px = randomPixels(cfg, 1, 7);
      const feats = await m.imageFeatures(px, 1);
      const want = refVision(cfg, (n) => w.get(n)!, px).map((x) => x / Math.sqrt(d));
      const fe = relErr(feats, want);
      console.log(`  PG${version} image features rel err ${fe.toExponential(2)}`);
      assert(fe < TOL, `image features rel err ${fe}`);

      // Prompt logits at every position, and num_logits_to_keep.
      const ids = prompt(cfg, [17, 42, 99, 5]);
      const pos = [ids.map((_, i) => i + 1)];
      const e = await m.mergedEmbeds([ids], px);
      const all = await m.decode(e, 1, [ids.map(() => 1)], pos, null, 0);
      assertEquals(all.keep, ids.length);
      const ref = refLogits(cfg, w, ids, px);
      const le = relErr(all.logits, ref);
      console.log(`  PG${version} prompt logits rel err ${le.toExponential(2)}`);
      assert(le < TOL, `prompt logits rel err ${le}`);
      const last = await m.decode(e, 1, [ids.map(() => 1)], pos, null, 1);
      assertEquals(last.keep, 1);
      assert(relErr(last.logits, ref.subarray((ids.length - 1) * v)) < TOL);

      // Two causal decode steps on the KV cache.
      let past = all.present;
      const seq = [...ids];
      for (const tok of [123, 7]) {
        seq.push(tok);
        const step = await m.decode(
          await m.embedIds([[tok]]),
          1,
          [seq.map(() => 1)],
          [[seq.length]],
          past,
          1,
        );
        past = step.present;
        const r = refLogits(cfg, w, seq, px, ids.length).subarray((seq.length - 1) * v);
        const se = relErr(step.logits, r);
        assert(se < TOL, `decode step logits rel err ${se}`);
      }
      assertEquals(past[0].dims[2], ids.length + 2);

      // Left-padded batch of two prompts with different lengths.
      const long = prompt(cfg, [17, 42, 99, 5, 61, 62]);
      const short = prompt(cfg, [33, 8]);
      const pad = long.length - short.length;
      const rows = [[...Array(pad).fill(0), ...short], long];
      const mask = [[...Array(pad).fill(0), ...short.map(() => 1)], long.map(() => 1)];
      const positions = mask.map((row) => {
        let c = 0;
        return row.map((x) => (x ? ++c : 1));
      });
      const px2 = randomPixels(cfg, 2, 9);
      const b = await m.decode(await m.mergedEmbeds(rows, px2), 2, mask, positions, null, 0);
      const img = 3 * cfg.vision.imageSize ** 2;
      const r0 = refLogits(cfg, w, short, px2.subarray(0, img));
      const r1 = refLogits(cfg, w, long, px2.subarray(img));
      const n = long.length;
      const be0 = relErr(b.logits.subarray(pad * v, n * v), r0);
      const be1 = relErr(b.logits.subarray(n * v), r1);
      console.log(
        `  PG${version} padded batch rel err ${be0.toExponential(2)} ${be1.toExponential(2)}`,
      );
      assert(be0 < TOL && be1 < TOL, `padded batch rel err ${be0} ${be1}`);
      await m.release();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/**
 * [precision, max rel logit error vs fp32, max rel error vs the float64 reference run on the
 * dequantised weights]. The second bound checks the quantised layout exactly, up to the int8
 * activations of accuracy_level 4 (measured 0.8-1.1 %; q4's 1.5 % fails when the MLP input
 * scaling is not divided out of the norm: 2.5-3.5 %); the first is loose for q4 because tiny random models lose
 * far more to 4-bit weights than real ones (see the report printed by the test).
 */
const LIMITS: [Precision, number, number][] = [
  ["fp16", 0.01, 0.01],
  ["q8", 0.03, 0.03],
  ["q4", 0.4, 0.015],
];

for (const version of [1, 2] as const) {
  Deno.test(`convert fp16/q8/q4 PaliGemma ${version} tiny: logits close to fp32`, async () => {
    const cfg = tinyConfig(version);
    const w = randomWeights(cfg, 200 + version);
    const src = memorySource(cfg, w);
    const dir = await Deno.makeTempDir({ prefix: "pg-convert-" });
    try {
      await convertModel(src, dir, { precision: "fp32", finalSoftcap: version === 2 });
      const base = await OnnxModel.load(dir, "", cfg);
      const px = randomPixels(cfg, 1, 11);
      const ids = prompt(cfg, [17, 42, 99, 5, 61, 62, 200, 201]);
      const mask = [ids.map(() => 1)];
      const pos = [ids.map((_, i) => i + 1)];
      const want =
        (await base.decode(await base.mergedEmbeds([ids], px), 1, mask, pos, null)).logits;
      await base.release();
      const v = cfg.text.vocabSize;
      // The weights the q8 / q4 graphs hold: each tensor rounded as its group is stored, gate and
      // up through the MLP input scaling the converter picks (quantised scaled, scaled back).
      const deq = (bits: 4 | 8) => {
        const out = new Map(w);
        const opts = defaultQuant(bits);
        const shapes = new Map(tensorShapes(cfg));
        const colScales = new Map<string, Float32Array>();
        for (let i = 0; i < cfg.text.numLayers; i++) {
          const pre = `language_model.model.layers.${i}.`;
          const norm = version === 2 ? "pre_feedforward_layernorm" : "post_attention_layernorm";
          const mats = ["gate_proj", "up_proj"].map((k) => `${pre}mlp.${k}.weight`);
          const [rows, cols] = shapes.get(mats[0])!;
          const mlp = opts.mlp;
          if (typeof mlp === "string") continue;
          const t = mats.map((n) => ({ w: { shape: [rows, cols], data: w.get(n)! }, scheme: mlp }));
          const { scales } = chooseInputScaling(
            w.get(`${pre}${norm}.weight`)!,
            t,
            opts.mlpInputScale ?? [],
          );
          if (scales) { for (const n of mats) colScales.set(n, scales); }
        }
        // q4 scales the MLP inputs (so this reference checks the folding into the norm).
        assertEquals(colScales.size > 0, bits === 4);
        for (const [name, shape] of shapes) {
          const role = linearRole(name);
          if (name !== EMBED && role === null) continue;
          const storage = name === EMBED ? opts.table : opts[role!];
          const x = w.get(name)!;
          if (storage === "fp32") continue;
          if (storage === "fp16" || storage === "fp16-as-fp32") {
            out.set(name, toFloat32(fromFloat32(x, "F16"), "F16"));
            continue;
          }
          const s = colScales.get(name);
          const scaled = s ? scaleColumns({ shape, data: x }, s).data : x;
          const back = dequantizeRows(
            quantizeRows(scaled, shape[0], shape[1], storage),
            shape[0],
            shape[1],
            storage,
          );
          if (s) { for (let j = 0; j < back.length; j++) back[j] /= s[j % shape[1]]; }
          out.set(name, back);
        }
        return out;
      };
      for (const [p, limit, deqLimit] of LIMITS) {
        await convertModel(src, dir, { precision: p, finalSoftcap: version === 2 });
        const m = await OnnxModel.load(dir, PRECISION_SUFFIX[p], cfg);
        const got = (await m.decode(await m.mergedEmbeds([ids], px), 1, mask, pos, null)).logits;
        await m.release();
        const err = relErr(got, want);
        const a = argmaxRows(got, v);
        const b = argmaxRows(want, v);
        const agree = a.filter((x, i) => x === b[i]).length / a.length;
        console.log(
          `  PG${version} ${p}: max rel logit err ${(err * 100).toFixed(3)}%, top-1 agreement ${
            (agree * 100).toFixed(1)
          }%`,
        );
        assert(err < limit, `${p} rel err ${err} above ${limit}`);
        const bits = p === "q8" ? 8 : p === "q4" ? 4 : null;
        const exact = refLogits(cfg, bits === null ? w : deq(bits), ids, px);
        const de = relErr(got, exact);
        console.log(`    vs float64 reference on ${p} weights: ${(de * 100).toFixed(3)}%`);
        assert(de < deqLimit, `${p} vs dequantised reference ${de}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
