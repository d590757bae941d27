/**
 * Converted fixture models (tests/fixtures/models, made by HF transformers 4.57 in float32)
 * against their expected outputs: image features, logits at every prompt position, the 24 greedy
 * tokens and the left-padded batch, converted from the HF folder (as transformers 4.57 and 5.24
 * wrote it) and from the big_vision npz;
 * then fp16 / q8 / q4 against fp32.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { type Checkpoint, openCheckpoint } from "../../lib/checkpoint/open.ts";
import { overrideConfig, readConfigJson } from "../../lib/convert/config_override.ts";
import { openSafetensors } from "../../lib/checkpoint/safetensors.ts";
import { convertModel, PRECISION_SUFFIX } from "../../lib/convert/convert.ts";
import type { Precision } from "../../lib/convert/layers.ts";
import type { ConvertSource } from "../../lib/convert/source.ts";
import { argmaxRows, OnnxModel, relErr } from "./onnx_runner.ts";

const FIX = new URL("../fixtures/models/", import.meta.url).pathname;
const TOL = 1e-4;

interface Expected {
  f32(name: string): Promise<{ data: Float32Array; shape: readonly number[] }>;
  ints(name: string): Promise<{ data: number[]; shape: readonly number[] }>;
  has(name: string): boolean;
  close(): void;
}

async function expected(path: string, inputs = path): Promise<Expected> {
  const out = await openSafetensors(path);
  const inp = inputs === path ? out : await openSafetensors(inputs);
  return {
    has: (n) => out.get(n) !== undefined,
    async f32(n) {
      const r = out.get(n) ?? inp.get(n)!;
      return { data: toFloat32(await r.read(), r.dtype), shape: r.shape };
    },
    async ints(n) {
      const r = out.get(n) ?? inp.get(n)!;
      const b = (await r.read()).slice();
      return { data: Array.from(new BigInt64Array(b.buffer), Number), shape: r.shape };
    },
    close() {
      out.close();
      if (inp !== out) inp.close();
    },
  };
}

function rows<T>(flat: T[], width: number): T[][] {
  return Array.from(
    { length: flat.length / width },
    (_, i) => flat.slice(i * width, (i + 1) * width),
  );
}

/** Columns [0, n) of a [rows, width] matrix. */
function cols(a: Float32Array, width: number, n: number): Float32Array {
  const r = a.length / width;
  const out = new Float32Array(r * n);
  for (let i = 0; i < r; i++) out.set(a.subarray(i * width, i * width + n), i * n);
  return out;
}

/**
 * A big_vision npz cannot carry PG2's query_pre_attn_scalar or soft-caps: apply the fixture's HF
 * config.json as `convert --config` does (HF folders are used as they are).
 */
async function withConfig(src: Checkpoint, model: string): Promise<ConvertSource> {
  if (src.format !== "big_vision") return src;
  const path = join(FIX, model, "hf", "config.json");
  return { ...src, config: overrideConfig(src.config, await readConfigJson(path), path) };
}

interface Case {
  ids: number[];
  pos: number[];
  mask: number[];
  pixels: Float32Array;
}

async function loadCase(ex: Expected, i: number): Promise<Case> {
  return {
    ids: (await ex.ints(`case${i}.input_ids`)).data,
    pos: (await ex.ints(`case${i}.position_ids`)).data,
    mask: (await ex.ints(`case${i}.attention_mask`)).data,
    pixels: (await ex.f32(`case${i}.pixel_values`)).data,
  };
}

async function caseLogits(m: OnnxModel, c: Case): Promise<Float32Array> {
  const e = await m.mergedEmbeds([c.ids], c.pixels);
  return (await m.decode(e, 1, [c.mask], [c.pos], null, 0)).logits;
}

/** 24 greedy tokens (plain argmax, no EOS stop) with the KV cache. */
async function greedy(m: OnnxModel, c: Case, steps: number): Promise<number[]> {
  const v = m.cfg.text.vocabSize;
  const mask = [...c.mask];
  let r = await m.decode(await m.mergedEmbeds([c.ids], c.pixels), 1, [mask], [c.pos], null, 1);
  const out: number[] = [];
  let pos = c.pos[c.pos.length - 1];
  for (let s = 0; s < steps; s++) {
    const tok = argmaxRows(r.logits, v)[0];
    out.push(tok);
    if (s === steps - 1) break;
    mask.push(1);
    r = await m.decode(await m.embedIds([[tok]]), 1, [mask], [[++pos]], r.present, 1);
  }
  return out;
}

const SOURCES: [string, string, string][] = [
  ["pg1-tiny", "hf", "expected.safetensors"],
  ["pg1-tiny", "bv.npz", "expected.safetensors"],
  ["pg1-tiny", "bv-bf16.npz", "expected-bf16.safetensors"],
  ["pg2-tiny", "hf", "expected.safetensors"],
  ["pg2-tiny", "bv.npz", "expected.safetensors"],
  // transformers 5.24's save_pretrained of hf/: the same logits (4.57's, un-capped) and greedy ids.
  ["pg1-tiny", "hf5", "expected.safetensors"],
  ["pg2-tiny", "hf5", "expected.safetensors"],
];

for (const [model, srcName, expName] of SOURCES) {
  Deno.test(`convert fp32 ${model}/${srcName}: matches ${expName}`, async () => {
    const ck = await openCheckpoint(join(FIX, model, srcName));
    const ex = await expected(join(FIX, model, expName), join(FIX, model, "expected.safetensors"));
    const dir = await Deno.makeTempDir({ prefix: "pg-convert-" });
    try {
      const src = await withConfig(ck, model);
      await convertModel(src, dir, { precision: "fp32" });
      const m = await OnnxModel.load(dir, "", src.config);
      const v = src.config.text.vocabSize;
      let worstF = 0;
      let worstL = 0;
      for (let i = 0; ex.has(`case${i}.logits`); i++) {
        const c = await loadCase(ex, i);
        const want = await ex.f32(`case${i}.logits`);
        const ve = want.shape[2];
        const feats = await m.imageFeatures(c.pixels, 1);
        worstF = Math.max(worstF, relErr(feats, (await ex.f32(`case${i}.image_features`)).data));
        const n = Math.min(v, ve);
        const got = await caseLogits(m, c);
        worstL = Math.max(worstL, relErr(cols(got, v, n), cols(want.data, ve, n)));
        const greedyIds = await greedy(m, c, 24);
        assert.deepEqual(
          greedyIds,
          (await ex.ints(`case${i}.greedy_ids`)).data,
          `case ${i} greedy`,
        );
      }
      console.log(
        `  image features rel err ${worstF.toExponential(2)}, logits ${worstL.toExponential(2)}`,
      );
      assert(worstF < TOL, `image features rel err ${worstF}`);
      assert(worstL < TOL, `logits rel err ${worstL}`);

      // Left-padded batch (only the f32 fixture has one): compare the real (unpadded) positions.
      if (!ex.has("batch.logits")) return await m.release();
      const ids = await ex.ints("batch.input_ids");
      const [b, t] = ids.shape;
      const mask = rows((await ex.ints("batch.attention_mask")).data, t);
      const pos = rows((await ex.ints("batch.position_ids")).data, t);
      const px = (await ex.f32("batch.pixel_values")).data;
      const e = await m.mergedEmbeds(rows(ids.data, t), px);
      const got = (await m.decode(e, b, mask, pos, null, 0)).logits;
      const want = await ex.f32("batch.logits");
      const ve = want.shape[2];
      const n = Math.min(v, ve);
      const keep = (a: Float32Array, w: number) => {
        const out: number[] = [];
        mask.flat().forEach((x, j) => {
          if (x) out.push(...a.subarray(j * w, j * w + n));
        });
        return out;
      };
      const be = relErr(keep(got, v), keep(want.data, ve));
      console.log(`  padded batch logits rel err ${be.toExponential(2)}`);
      assert(be < TOL, `batch logits rel err ${be}`);
      await m.release();
    } finally {
      ex.close();
      ck.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/**
 * [precision, max rel logit error, min top-1 agreement]: the issue's limits (1 %, 3 %, 15 %) with
 * top-1 floors that catch layout bugs (agreement falls to chance, ~0.05 %). Measured on these
 * deliberately sensitive fixtures (BENCHMARKS.md): fp16 0.12 %, q8 2.6 % / 2.2 %, q4 13.8 % /
 * 14.4 % (PG1 / PG2); q4 gets under its limit through the MLP input scaling
 * (lib/convert/input_scaling.ts), 19.5 % / 19.2 % without it.
 */
const LIMITS: [Precision, number, number][] = [
  ["fp16", 0.01, 0.99],
  ["q8", 0.03, 0.93],
  ["q4", 0.15, 0.75],
];

/** The issue's limits, printed beside the measured errors. */
const ISSUE_LIMITS: [Precision, number][] = [["fp16", 0.01], ["q8", 0.03], ["q4", 0.15]];

for (const model of ["pg1-tiny", "pg2-tiny"]) {
  Deno.test(`convert fp16/q8/q4 ${model}: logits against fp32`, async () => {
    const ck = await openCheckpoint(join(FIX, model, "hf"));
    const ex = await expected(join(FIX, model, "expected.safetensors"));
    const dir = await Deno.makeTempDir({ prefix: "pg-convert-" });
    try {
      const v = ck.config.text.vocabSize;
      const cases: Case[] = [];
      for (let i = 0; ex.has(`case${i}.logits`); i++) cases.push(await loadCase(ex, i));
      const run = async (p: Precision) => {
        await convertModel(ck, dir, { precision: p });
        const m = await OnnxModel.load(dir, PRECISION_SUFFIX[p], ck.config);
        const out = [];
        for (const c of cases) out.push(await caseLogits(m, c));
        await m.release();
        return out;
      };
      const base = await run("fp32");
      const failures: string[] = [];
      for (const [p, limit, minAgree] of LIMITS) {
        const got = await run(p);
        let err = 0;
        let agree = 0;
        let total = 0;
        got.forEach((g, i) => {
          err = Math.max(err, relErr(g, base[i]));
          const a = argmaxRows(g, v);
          const b = argmaxRows(base[i], v);
          agree += a.filter((x, j) => x === b[j]).length;
          total += a.length;
        });
        const [, issueLimit] = ISSUE_LIMITS.find(([q]) => q === p)!;
        console.log(
          `  ${model} ${p} (issue limit ${issueLimit * 100}%): max rel logit err ${
            (err * 100).toFixed(3)
          }%, top-1 agreement ${(agree / total * 100).toFixed(1)}%`,
        );
        if (err >= limit) failures.push(`${p} rel err ${err} above ${limit}`);
        if (agree / total < minAgree) failures.push(`${p} top-1 agreement ${agree / total}`);
      }
      assert.deepEqual(failures, []);
    } finally {
      ex.close();
      ck.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
