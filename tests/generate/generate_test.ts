/**
 * The generation loop on the ONNX backend over the converted tiny fixture models (from the HF
 * folder and from the big_vision npz): the 24 greedy tokens equal HF's exactly, padded batches
 * equal one-by-one runs, the image/prompt pipeline reproduces them from the image files, EOS and
 * max-tokens stop, and seeded sampling is reproducible.
 */

import assert from "node:assert/strict";
import type { Backend } from "../../lib/backend/backend.ts";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import { generate, type GenerateOptions } from "../../lib/generate/generate.ts";
import { isFailure, runJobs } from "../../lib/generate/pipeline.ts";
import { seededRng } from "../../lib/generate/rng.ts";
import type { SamplingOptions } from "../../lib/generate/sampling.ts";
import { batchPrompts } from "../../lib/prompt/batch.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import {
  caseRow,
  convertFixture,
  type FixtureCase,
  fixtureCases,
  generateCases,
  withTempDir,
} from "./fixture_models.ts";

const STEPS = 24;

/** Generates for `cases` as one left-padded batch, from the fixture's ids and pixel values. */
function run(
  be: Backend,
  cases: readonly FixtureCase[],
  opts: Partial<GenerateOptions> = {},
): Promise<number[][]> {
  return generateCases(be, cases, STEPS, opts);
}

const SOURCES: [string, string][] = [
  ["pg1-tiny", "hf"],
  ["pg1-tiny", "bv.npz"],
  ["pg2-tiny", "hf"],
  ["pg2-tiny", "bv.npz"],
];

for (const [model, source] of SOURCES) {
  Deno.test(`generate ${model}/${source}: greedy tokens equal HF's, alone and in a padded batch`, () =>
    withTempDir(async (dir) => {
      await convertFixture(model, source, dir);
      const cases = await fixtureCases(model);
      const be = await OnnxBackend.load(await openModelDir(dir), { threads: 1 });
      try {
        const lengths = new Set(cases.map((c) => c.ids.length));
        assert.ok(lengths.size > 1, "the cases must have different lengths to test padding");
        for (const [i, c] of cases.entries()) {
          assert.deepEqual((await run(be, [c]))[0], c.greedy, `case ${i} alone`);
        }
        const batched = await run(be, cases);
        cases.forEach((c, i) => assert.deepEqual(batched[i], c.greedy, `case ${i} in the batch`));
      } finally {
        await be.release();
      }
    }));
}

Deno.test("generate pg1-tiny: image files + prompts through runJobs give HF's greedy tokens", () =>
  withTempDir(async (dir) => {
    await convertFixture("pg1-tiny", "hf", dir);
    const cases = await fixtureCases("pg1-tiny");
    const md = await openModelDir(dir);
    const be = await OnnxBackend.load(md, { dtype: "fp32" });
    const tok = await loadTokenizer(md.tokenizer);
    try {
      const jobs = cases.map((c) => ({ image: c.image, prompt: c.prompt }));
      // Batches of 4 then 2: mixed prompt lengths, left padding, two batch sizes.
      const seen: number[] = [];
      for await (
        const r of runJobs(be, tok, jobs, { batchSize: 4, maxTokens: STEPS, eosIds: [] })
      ) {
        seen.push(r.index);
        if (isFailure(r)) throw r.error;
        assert.deepEqual(r.tokens, cases[r.index].greedy, `case ${r.index}`);
        assert.equal(r.stop, "max_tokens");
        assert.equal(r.text, tok.decode(cases[r.index].greedy, true));
      }
      assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
    } finally {
      await be.release();
    }
  }));

Deno.test("generate pg2-tiny: stops at an EOS id and at maxTokens", () =>
  withTempDir(async (dir) => {
    await convertFixture("pg2-tiny", "hf", dir);
    const cases = await fixtureCases("pg2-tiny");
    const be = await OnnxBackend.load(await openModelDir(dir));
    try {
      const [a, b] = cases;
      // Pretend b's 6th greedy token ends the sequence: b stops before it, a runs on unless it
      // meets the same id, and the stop reasons say why.
      const stopId = b.greedy[5];
      const first = (g: number[]) => (g.indexOf(stopId) < 0 ? g.length : g.indexOf(stopId));
      const batch = batchPrompts([caseRow(a.ids), caseRow(b.ids)], be.config.padTokenId);
      const feats = await be.encodeImages(new Float32Array([...a.pixels, ...b.pixels]), 2);
      const res = await generate(be, batch, feats, {
        maxTokens: STEPS,
        eosIds: [stopId],
        padId: be.config.padTokenId,
      });
      assert.deepEqual(res.tokens[1], b.greedy.slice(0, first(b.greedy)));
      assert.equal(res.stop[1], "eos");
      assert.deepEqual(res.tokens[0], a.greedy.slice(0, first(a.greedy)));
      // A row finishes at the choice of its EOS, or of its last allowed token.
      const finish = (g: number[]) => (g.indexOf(stopId) < 0 ? STEPS - 1 : g.indexOf(stopId));
      assert.equal(res.steps, Math.max(finish(a.greedy), finish(b.greedy)));
      const short = await run(be, [a], { maxTokens: 5 });
      assert.deepEqual(short[0], a.greedy.slice(0, 5));
    } finally {
      await be.release();
    }
  }));

Deno.test("generate pg1-tiny: seeded sampling is reproducible, seed-dependent, top-k=1 is greedy", () =>
  withTempDir(async (dir) => {
    await convertFixture("pg1-tiny", "hf", dir);
    const cases = await fixtureCases("pg1-tiny");
    const be = await OnnxBackend.load(await openModelDir(dir));
    try {
      const sample = (sampling: SamplingOptions, seed: number) =>
        run(be, cases, { sampling, rngs: cases.map((_, i) => seededRng(seed, i)) });
      const hot: SamplingOptions = { temperature: 1.5, topK: 0, topP: 1 };
      const s7 = await sample(hot, 7);
      assert.deepEqual(await sample(hot, 7), s7, "same seed, same tokens");
      const s8 = await sample(hot, 8);
      assert.notDeepEqual(s8, s7, "another seed, other tokens");
      const greedy = cases.map((c) => c.greedy);
      assert.notDeepEqual(s7, greedy, "temperature 1.5 should leave the greedy path");
      assert.deepEqual(await sample({ temperature: 1, topK: 1, topP: 1 }, 7), greedy);
      assert.deepEqual(await sample({ temperature: 0.7, topK: 40, topP: 1e-9 }, 3), greedy);
      // Each row draws from its own stream: the same row alone gives the same tokens.
      assert.deepEqual(
        (await run(be, [cases[2]], { sampling: hot, rngs: [seededRng(7, 2)] }))[0],
        s7[2],
      );
    } finally {
      await be.release();
    }
  }));

Deno.test("generate pg2-tiny: each precision loads; the best present is the default", () =>
  withTempDir(async (dir) => {
    await convertFixture("pg2-tiny", "hf", dir, "q8");
    assert.deepEqual((await openModelDir(dir)).dtypes, ["q8"]);
    for (const p of ["q4", "fp16"] as const) await convertFixture("pg2-tiny", "hf", dir, p);
    const md = await openModelDir(dir);
    assert.deepEqual(md.dtypes, ["fp16", "q8", "q4"]);
    const cases = await fixtureCases("pg2-tiny");
    for (const dtype of [undefined, "q8", "q4"] as const) {
      const be = await OnnxBackend.load(md, { dtype });
      try {
        assert.equal(be.dtype, dtype ?? "fp16");
        const got = await run(be, cases);
        let agree = 0;
        got.forEach((g, i) => g.forEach((t, j) => (agree += t === cases[i].greedy[j] ? 1 : 0)));
        const first = got.filter((g, i) => g[0] === cases[i].greedy[0]).length;
        console.log(
          `  ${be.dtype}: first token agrees on ${first}/${cases.length} cases, ` +
            `${agree}/${cases.length * STEPS} greedy tokens in place`,
        );
        got.forEach((g) => assert.equal(g.length, STEPS));
      } finally {
        await be.release();
      }
    }
  }));
