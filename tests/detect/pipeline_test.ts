/**
 * `runJobs` hands detect/segment what they need from the one decode of each image: the original
 * size always, the decoded RGB only when asked (for overlays).
 */

import assert from "node:assert/strict";
import { CpuPickBackend } from "../../lib/backend/cpu_pick.ts";
import type { DecodeInput, ImageFeatures, KvCache, StepOutput } from "../../lib/backend/backend.ts";
import {
  isFailure,
  type JobFailure,
  type JobResult,
  runJobs,
} from "../../lib/generate/pipeline.ts";
import { buildPrompt } from "../../lib/prompt/build.ts";
import { loadImage } from "../../lib/image/load.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";

const TOKENIZER = new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url).pathname;
const IMAGES = new URL("../fixtures/images/", import.meta.url).pathname;

/** Emits end of sequence at once; remembers the pixel values it was given. */
class EosBackend extends CpuPickBackend {
  readonly dtype = "fp32";
  readonly name = "eos";
  readonly pixels: Float32Array[] = [];

  contextLength = 8192;
  constructor(readonly vocabSize: number, readonly config: PaliGemmaConfig, private eos: number) {
    super();
  }

  private step(b: number, length: number): StepOutput {
    const logits = new Float32Array(b * this.vocabSize);
    for (let r = 0; r < b; r++) logits[r * this.vocabSize + this.eos] = 1;
    const cache: KvCache = { batchSize: b, length };
    return { logits, kept: 1, cache };
  }

  encodeImages(pixels: Float32Array, b: number): Promise<ImageFeatures> {
    this.pixels.push(pixels.slice());
    return Promise.resolve({ batchSize: b, tokens: 4, dim: 1, data: new Float32Array(4 * b) });
  }
  prefillLogits(input: { batchSize: number; length: number }): Promise<StepOutput> {
    return Promise.resolve(this.step(input.batchSize, input.length));
  }
  decodeLogits(input: DecodeInput): Promise<StepOutput> {
    return Promise.resolve(this.step(input.cache.batchSize, input.cache.length + 1));
  }
  release(): Promise<void> {
    return Promise.resolve();
  }
}

Deno.test("runJobs: original width/height always, the decoded RGB only with keepRgb", async () => {
  const tok = await loadTokenizer(TOKENIZER);
  const config = {
    imageTokenIndex: tok.imageId,
    numImageTokens: 4,
    padTokenId: tok.padId,
    vision: { imageSize: 28 },
  } as unknown as PaliGemmaConfig;
  const images = ["chelsea.png", "exif6.jpg", "astronaut.png"].map((n) => IMAGES + n);
  const jobs = images.map((image) => ({ image, prompt: "detect cat" }));
  for (const keepRgb of [false, true]) {
    const be = new EosBackend(tok.vocabSize, config, tok.eosId);
    const opts = { batchSize: 2, maxTokens: 4, eosIds: [tok.eosId], keepRgb };
    let n = 0;
    for await (const r of runJobs(be, tok, jobs, opts)) {
      if (isFailure(r)) throw r.error;
      const want = await loadImage(r.job.image);
      assert.deepEqual([r.width, r.height], [want.width, want.height], r.job.image);
      if (keepRgb) assert.deepEqual(r.rgb, want.rgb, r.job.image);
      else assert.equal(r.rgb, undefined);
      assert.equal(r.stop, "eos");
      n++;
    }
    assert.equal(n, 3);
    assert.equal(be.pixels.length, 2);
  }
});

Deno.test("runJobs: a bad image or a prompt past the context fails that job only; rows stop at the context", async () => {
  const tok = await loadTokenizer(TOKENIZER);
  const config = {
    imageTokenIndex: tok.imageId,
    numImageTokens: 4,
    padTokenId: tok.padId,
    vision: { imageSize: 28 },
  } as unknown as PaliGemmaConfig;
  const short = "caption en";
  const long = `answer en ${"what colour is the cat ".repeat(8)}`;
  const shortLength = buildPrompt(tok, 4, short).inputIds.length;
  assert.ok(buildPrompt(tok, 4, long).inputIds.length > shortLength + 3);
  const jobs = [
    { image: IMAGES + "chelsea.png", prompt: short },
    { image: IMAGES + "missing.png", prompt: short },
    { image: IMAGES + "chelsea.png", prompt: long },
    { image: IMAGES + "astronaut.png", prompt: short },
  ];
  const notEos = 5; // the backend always picks this id, so only a limit stops a row
  for (const [maxTokens, stop, n] of [[10, "context", 3], [2, "max_tokens", 2]] as const) {
    const be = new EosBackend(tok.vocabSize, config, notEos);
    be.contextLength = shortLength + 3;
    const out: (JobResult | JobFailure)[] = [];
    for await (
      const r of runJobs(be, tok, jobs, { batchSize: 4, maxTokens, eosIds: [tok.eosId] })
    ) {
      out.push(r);
    }
    assert.deepEqual(out.map((r) => r.index), [0, 1, 2, 3]);
    const [a, missing, tooLong, b] = out;
    assert.ok(isFailure(missing) && missing.kind === "bad_image");
    assert.ok(isFailure(tooLong) && tooLong.kind === "prompt_too_long");
    for (const r of [a, b]) {
      assert.ok(!isFailure(r));
      assert.equal(r.stop, stop);
      assert.deepEqual(r.tokens, new Array(n).fill(notEos));
    }
    assert.equal(be.pixels.length, 1, "one batch, the good images only");
  }
});
