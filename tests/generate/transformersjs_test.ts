/**
 * transformers.js reads our output: @huggingface/transformers (local files only) loads a folder
 * written by `convert`, its PaliGemma processor builds the same input ids as ours, and its greedy
 * `generate` gives the same tokens as our runtime and as HF (the fixture).
 *
 * The pixel values are ours (equal to HF's within 1.2e-7): transformers.js resizes with its own
 * bicubic, which differs from PIL's by up to ~1.3 in [-1, 1] units on these small images, and on a
 * random tiny model that changes the tokens. Its decoder feeds `attention_mask` and
 * `num_logits_to_keep` because our graph declares them, and counts positions from 1, as we do.
 */

import assert from "node:assert/strict";
import { basename, dirname } from "node:path";
import {
  AutoProcessor,
  env,
  PaliGemmaForConditionalGeneration,
  RawImage,
  Tensor,
} from "@huggingface/transformers";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import { isFailure, runJobs } from "../../lib/generate/pipeline.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import type { Precision } from "../../lib/model/precision.ts";
import { convertFixture, type FixtureCase, fixtureCases, withTempDir } from "./fixture_models.ts";

const STEPS = 24;

/** Greedy tokens of our runtime, through the whole image + prompt pipeline. */
async function ourTokens(dir: string, dtype: Precision, cases: FixtureCase[]): Promise<number[][]> {
  const md = await openModelDir(dir);
  const be = await OnnxBackend.load(md, { dtype });
  const tok = await loadTokenizer(md.tokenizer);
  const out: number[][] = [];
  const jobs = cases.map((c) => ({ image: c.image, prompt: c.prompt }));
  for await (const r of runJobs(be, tok, jobs, { maxTokens: STEPS, eosIds: md.eosIds })) {
    if (isFailure(r)) throw r.error;
    out.push(r.tokens);
  }
  await be.release();
  return out;
}

/**
 * Input ids of transformers.js' processor and its greedy tokens (with our pixel values), per case,
 * loading `dir` as `dtype` from local files only.
 */
async function transformersJsTokens(
  dir: string,
  dtype: Precision,
  cases: FixtureCase[],
): Promise<{ ids: number[]; tokens: number[] }[]> {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dirname(dir);
  const id = basename(dir);
  const processor = await AutoProcessor.from_pretrained(id, { local_files_only: true });
  const tjs = await PaliGemmaForConditionalGeneration.from_pretrained(id, {
    dtype,
    device: "cpu",
    local_files_only: true,
  });
  try {
    const out = [];
    for (const c of cases) {
      const inputs = await processor(await RawImage.read(c.image), `<image>${c.prompt}`);
      const ids = Array.from(inputs.input_ids.data as BigInt64Array, Number);
      const s = Math.sqrt(c.pixels.length / 3);
      const gen = await tjs.generate({
        ...inputs,
        pixel_values: new Tensor("float32", c.pixels, [1, 3, s, s]),
        max_new_tokens: STEPS,
        do_sample: false,
      }) as Tensor;
      out.push({ ids, tokens: Array.from(gen.data as BigInt64Array, Number).slice(ids.length) });
    }
    return out;
  } finally {
    await tjs.dispose();
  }
}

for (const model of ["pg1-tiny", "pg2-tiny"]) {
  Deno.test({
    name: `transformers.js on converted ${model}: same ids in, same greedy tokens out`,
    // transformers.js keeps ORT handles and timers of its own alive after the test.
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () =>
      withTempDir(async (dir) => {
        await convertFixture(model, "hf", dir);
        const cases = await fixtureCases(model);
        const ours = await ourTokens(dir, "fp32", cases);
        const theirs = await transformersJsTokens(dir, "fp32", cases);
        for (const [i, c] of cases.entries()) {
          assert.deepEqual(
            theirs[i].ids,
            Array.from(c.ids),
            `case ${i}: transformers.js input ids`,
          );
          assert.deepEqual(theirs[i].tokens, ours[i], `case ${i}: transformers.js vs our runtime`);
          assert.deepEqual(theirs[i].tokens, c.greedy, `case ${i}: transformers.js vs HF`);
        }
      }),
  });
}

Deno.test({
  name: "transformers.js on converted pg1-tiny q4: same greedy tokens as our runtime",
  sanitizeOps: false,
  sanitizeResources: false,
  // The q4 folder holds MatMulNBits layers, fp16 vision weights behind a Cast and the MLP input
  // scaling folded into the norms: transformers.js must run all of it as our runtime does.
  fn: () =>
    withTempDir(async (dir) => {
      await convertFixture("pg1-tiny", "hf", dir, "q4");
      const cases = await fixtureCases("pg1-tiny");
      const ours = await ourTokens(dir, "q4", cases);
      const theirs = await transformersJsTokens(dir, "q4", cases);
      for (const [i] of cases.entries()) {
        assert.deepEqual(
          theirs[i].tokens,
          ours[i],
          `case ${i}: transformers.js vs our runtime (q4)`,
        );
      }
      // q4 is not fp32: the tokens must not all be the fp32 ones by accident of loading fp32.
      assert(
        cases.some((c, i) => ours[i].some((t, j) => t !== c.greedy[j])),
        "q4 tokens equal the fp32 fixture in every case",
      );
    }),
});
