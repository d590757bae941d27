/**
 * Worker sessions (`OnnxBackend.load(..., { workers: true })`, the default for full-size graphs):
 * the vision encoder and the decoder created and run in worker threads give exactly the logits of
 * sessions in this thread, step by step, and HF's greedy tokens; a bad graph fails the load with
 * the one-line error naming the file; once released, the workers no longer keep the process alive.
 */

import assert from "node:assert/strict";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import { InputError } from "../../lib/errors.ts";
import { generate } from "../../lib/generate/generate.ts";
import { batchPrompts } from "../../lib/prompt/batch.ts";
import { convertFixture, fixtureCases, withTempDir } from "../generate/fixture_models.ts";
import type { StepOutput } from "../../lib/backend/backend.ts";

/** Prefill then `steps` greedy decode steps; every step's logits. */
async function trace(be: OnnxBackend, ids: Int32Array, pixels: Float32Array, steps: number) {
  const n = ids.length;
  const image = await be.encodeImages(pixels, 1);
  let out: StepOutput = await be.prefillLogits({
    batchSize: 1,
    length: n,
    inputIds: ids,
    attentionMask: new Int32Array(n).fill(1),
    positionIds: Int32Array.from({ length: n }, (_, i) => i + 1),
    image,
  });
  const logits = [Array.from(image.data), Array.from(out.logits)];
  for (let i = 0; i < steps; i++) {
    let best = 0;
    for (let j = 1; j < be.vocabSize; j++) if (out.logits[j] > out.logits[best]) best = j;
    out = await be.decodeLogits({
      cache: out.cache,
      tokens: Int32Array.of(best),
      positionIds: Int32Array.of(n + i + 1),
      attentionMask: new Int32Array(out.cache.length + 1).fill(1),
    });
    logits.push(Array.from(out.logits));
  }
  return logits;
}

Deno.test("worker sessions: the same image features and logits as local ones, HF's greedy tokens", () =>
  withTempDir(async (dir) => {
    await convertFixture("pg1-tiny", "hf", dir);
    const cases = await fixtureCases("pg1-tiny");
    const md = await openModelDir(dir);
    const local = await OnnxBackend.load(md, { threads: 1, workers: false });
    const remote = await OnnxBackend.load(md, { threads: 1, workers: true });
    try {
      assert.match(remote.name, /worker sessions/);
      assert.doesNotMatch(local.name, /worker sessions/);
      const c = cases[0];
      assert.deepEqual(
        await trace(remote, c.ids, c.pixels, 6),
        await trace(local, c.ids, c.pixels, 6),
      );
      // A padded batch through the shared generation loop: HF's greedy tokens.
      const rows = cases.slice(0, 3).map((k) => ({
        inputIds: k.ids,
        tokenTypeIds: new Int32Array(k.ids.length),
        positionIds: Int32Array.from({ length: k.ids.length }, (_, i) => i + 1),
        attentionMask: new Int32Array(k.ids.length).fill(1),
        prefixLength: k.ids.length,
        numImageTokens: 0,
      }));
      const batch = batchPrompts(rows, remote.config.padTokenId);
      const px = new Float32Array(3 * c.pixels.length);
      cases.slice(0, 3).forEach((k, i) => px.set(k.pixels, i * k.pixels.length));
      const feats = await remote.encodeImages(px, 3);
      const res = await generate(remote, batch, feats, {
        maxTokens: 24,
        eosIds: [],
        padId: remote.config.padTokenId,
      });
      cases.slice(0, 3).forEach((k, i) => assert.deepEqual(res.tokens[i], k.greedy, `case ${i}`));
    } finally {
      await local.release();
      await remote.release();
    }
  }));

Deno.test("worker sessions: a graph ONNX Runtime cannot load fails the load naming the file", () =>
  withTempDir(async (dir) => {
    await convertFixture("pg1-tiny", "hf", dir);
    const md = await openModelDir(dir);
    const bad = md.graph("decoder_model_merged", "fp32");
    await Deno.writeFile(bad, new TextEncoder().encode("not a graph"));
    await assert.rejects(
      () => OnnxBackend.load(md, { workers: true }),
      (e: unknown) =>
        e instanceof InputError && e.message.startsWith(`${bad}: ONNX Runtime cannot load it (`),
    );
  }));

Deno.test("worker sessions: a released backend lets the process end", () =>
  withTempDir(async (dir) => {
    await convertFixture("pg1-tiny", "hf", dir);
    const onnx = new URL("../../lib/backend/onnx.ts", import.meta.url).href;
    const modelDir = new URL("../../lib/backend/model_dir.ts", import.meta.url).href;
    const script = `
import { OnnxBackend } from ${JSON.stringify(onnx)};
import { openModelDir } from ${JSON.stringify(modelDir)};
const be = await OnnxBackend.load(await openModelDir(${JSON.stringify(dir)}), { workers: true });
const f = await be.encodeImages(new Float32Array(3 * be.config.vision.imageSize ** 2), 1);
console.log("features", f.tokens);
await be.release();`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.match(new TextDecoder().decode(out.stdout), /^features \d+/);
  }));
