/**
 * A model folder's preprocessor_config.json reaches the pixel values: openModelDir reads it and
 * runJobs hands it to preprocessImage. With the converted fixture's own file the pixels are HF's
 * (the fixture's pixel_values); with `image_mean` changed they move by exactly what HF's formula
 * gives; with `resample` 2 the resize is Pillow's bilinear; without rescaling and normalising
 * they are the resized samples. Values that cannot be honoured are refused naming the file, the
 * field, the value and what is supported (library and CLI).
 */

import assert from "node:assert/strict";
import { CpuPickBackend } from "../../lib/backend/cpu_pick.ts";
import * as fs from "node:fs";
import { join } from "node:path";
import type { DecodeInput, ImageFeatures, KvCache, StepOutput } from "../../lib/backend/backend.ts";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { isFailure, runJobs } from "../../lib/generate/pipeline.ts";
import { loadImage } from "../../lib/image/load.ts";
import { pixelTables } from "../../lib/image/normalize.ts";
import { DEFAULT_PREPROCESS, UnsupportedPreprocessing } from "../../lib/image/preprocess_config.ts";
import { resizeRgb } from "../../lib/image/resize.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import { runPg } from "../helpers/cli.ts";
import { convertFixture, fixtureCases, withTempDir } from "./fixture_models.ts";

/** Ends every row at once; keeps the pixel values it is given. */
class PixelSpy extends CpuPickBackend {
  readonly dtype = "fp32";
  readonly name = "pixel-spy";
  readonly contextLength = 8192;
  readonly pixels: Float32Array[] = [];
  readonly vocabSize: number;

  constructor(readonly config: PaliGemmaConfig, private readonly eos: number) {
    super();
    this.vocabSize = config.text.vocabSize;
  }

  private step(b: number, length: number): StepOutput {
    const logits = new Float32Array(b * this.vocabSize);
    for (let r = 0; r < b; r++) logits[r * this.vocabSize + this.eos] = 1;
    const cache: KvCache = { batchSize: b, length };
    return { logits, kept: 1, cache };
  }

  encodeImages(pixels: Float32Array, b: number): Promise<ImageFeatures> {
    this.pixels.push(pixels.slice());
    const tokens = this.config.numImageTokens;
    const dim = this.config.text.hiddenSize;
    return Promise.resolve({ batchSize: b, tokens, dim, data: new Float32Array(b * tokens * dim) });
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

/** The pixel values runJobs gives the backend for `image` with the model folder `model`. */
async function pixelsOf(model: string, image: string): Promise<Float32Array> {
  const dir = await openModelDir(model);
  const tok = await loadTokenizer(dir.tokenizer);
  const spy = new PixelSpy(dir.config, dir.eosIds[0]);
  const jobs = [{ image, prompt: "caption en" }];
  const opts = { maxTokens: 1, eosIds: dir.eosIds, preprocess: dir.preprocess };
  for await (const r of runJobs(spy, tok, jobs, opts)) if (isFailure(r)) throw r.error;
  assert.equal(spy.pixels.length, 1);
  return spy.pixels[0];
}

/** A copy of the model folder `base` at `dst` with its preprocessor_config.json edited. */
function variant(base: string, dst: string, edit: (json: Record<string, unknown>) => void): string {
  fs.cpSync(base, dst, { recursive: true });
  const file = join(dst, "preprocessor_config.json");
  const json = JSON.parse(fs.readFileSync(file, "utf8"));
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
  return dst;
}

const f32 = Math.fround;

Deno.test("preprocessor_config.json drives the pixel values; unusable values are refused", () =>
  withTempDir(async (tmp) => {
    const base = join(tmp, "base");
    await Deno.mkdir(base);
    await convertFixture("pg1-tiny", "hf", base);
    const dir = await openModelDir(base);
    assert.deepEqual(dir.preprocess, DEFAULT_PREPROCESS);
    const size = dir.config.vision.imageSize;
    const n = size * size;
    const c = (await fixtureCases("pg1-tiny"))[0];

    // The folder's own file (the fixture's HF values): HF's pixel values (1 ulp: see prompt_test).
    const px = await pixelsOf(base, c.image);
    let worst = 0;
    for (let i = 0; i < px.length; i++) worst = Math.max(worst, Math.abs(px[i] - c.pixels[i]));
    assert.ok(worst <= 1e-6, `max |pixel - HF| = ${worst}`);
    // The resized samples behind them (each value is one of the 256 of its table).
    const u8 = Uint8Array.from(px, (p) => Math.round((p * 0.5 + 0.5) * 255));
    const tables = pixelTables(DEFAULT_PREPROCESS);
    u8.forEach((v, i) => assert.equal(tables[Math.floor(i / n)][v], px[i], `sample ${i}`));

    // image_mean changed: every value is f32(f32(f32(v / 255) - mean) / std), HF's order; R and B
    // move by 2 (0.5 - mean) up to rounding, G (mean kept) not at all.
    const mean = [0.25, 0.5, 0.625];
    const shifted = variant(base, join(tmp, "mean"), (j) => {
      j.image_mean = mean;
    });
    const pm = await pixelsOf(shifted, c.image);
    for (let i = 0; i < pm.length; i++) {
      const ch = Math.floor(i / n);
      const want = f32(f32(f32(u8[i] * 0.00392156862745098) - f32(mean[ch])) / f32(0.5));
      assert.equal(pm[i], want, `value ${i}`);
      assert.ok(Math.abs(pm[i] - px[i] - 2 * (0.5 - mean[ch])) < 1e-6, `shift of value ${i}`);
    }
    assert.deepEqual(pm.subarray(n, 2 * n), px.subarray(n, 2 * n));

    // resample 2: the image is resized with Pillow's bilinear (checked against Pillow elsewhere).
    const bilinear = variant(base, join(tmp, "bilinear"), (j) => {
      j.resample = 2;
    });
    const pb = await pixelsOf(bilinear, c.image);
    const img = await loadImage(c.image);
    const want = resizeRgb(img.rgb, img.width, img.height, size, size, "bilinear");
    const got = Uint8Array.from(pb, (p) => Math.round((p * 0.5 + 0.5) * 255));
    const hwc = new Uint8Array(3 * n);
    for (let i = 0; i < n; i++) for (let k = 0; k < 3; k++) hwc[i * 3 + k] = got[k * n + i];
    assert.deepEqual(hwc, want);
    assert.notDeepEqual(pb, px, "bilinear differs from bicubic on this image");

    // No rescaling and no normalising: the resized samples themselves.
    const raw = variant(base, join(tmp, "raw"), (j) => {
      j.do_rescale = false;
      j.do_normalize = false;
    });
    assert.deepEqual(await pixelsOf(raw, c.image), Float32Array.from(u8));

    // Values the image path cannot honour: refused when the folder is opened.
    const refusals: [string, (j: Record<string, unknown>) => void, string, RegExp][] = [
      ["size", (j) => j.size = { height: 64, width: 64 }, "size", /\{"height": 56, "width": 56\}/],
      ["wide", (j) => j.size = { height: 56, width: 112 }, "size", /"width":112/],
      ["nearest", (j) => j.resample = 0, "resample", /resample 0 .*3 \(BICUBIC\)/],
      ["mean2", (j) => j.image_mean = [0.5, 0.5], "image_mean", /\[0\.5,0\.5\]/],
      ["std0", (j) => j.image_std = [0.5, 0, 0.5], "image_std", /non-zero/],
      ["noresize", (j) => j.do_resize = false, "do_resize", /do_resize false/],
      ["tokens", (j) => j.image_seq_length = 17, "image_seq_length", /17 .*\(supported: 16\b/],
    ];
    for (const [name, edit, field, pattern] of refusals) {
      const model = variant(base, join(tmp, name), edit);
      const file = join(model, "preprocessor_config.json");
      await assert.rejects(openModelDir(model), (e: unknown) => {
        assert.ok(e instanceof UnsupportedPreprocessing, `${name}: ${e}`);
        assert.equal(e.exitCode, 3);
        assert.equal(e.file, file);
        assert.equal(e.field, field);
        assert.ok(e.message.startsWith(`${file}: ${field} `), e.message);
        assert.match(e.message, pattern);
        assert.ok(!e.message.includes("\n"));
        return true;
      });
    }
    // Through the CLI: one line naming the file, exit 3.
    const r = await runPg(["caption", c.image, "--model", join(tmp, "size")]);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr.trim(), /^paligemma: .*preprocessor_config\.json: size .*not supported/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);

    // Without the file: HF PaliGemma's defaults.
    await Deno.remove(join(tmp, "raw", "preprocessor_config.json"));
    assert.deepEqual((await openModelDir(join(tmp, "raw"))).preprocess, DEFAULT_PREPROCESS);
  }));
