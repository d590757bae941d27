/**
 * Reading preprocessor_config.json: HF's fixture file and absent fields give HF PaliGemma's
 * processing; other honourable values are kept as stated; the rest is refused naming the file,
 * the field, the value and what is supported. The pixel tables follow HF's formula.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../../lib/errors.ts";
import { pixelTables } from "../../lib/image/normalize.ts";
import {
  DEFAULT_PREPROCESS,
  parsePreprocessConfig,
  readPreprocessConfig,
  UnsupportedPreprocessing,
} from "../../lib/image/preprocess_config.ts";

const INPUT = { imageSize: 56, imageTokens: 16 };
const HF_FILE = new URL("../fixtures/models/pg1-tiny/hf/preprocessor_config.json", import.meta.url)
  .pathname;
const parse = (json: unknown) => parsePreprocessConfig(json, "p.json", INPUT);

Deno.test("preprocessor config: HF's file and absent fields give the defaults", () => {
  assert.deepEqual(readPreprocessConfig(HF_FILE, INPUT), DEFAULT_PREPROCESS);
  assert.deepEqual(parse({}), DEFAULT_PREPROCESS);
  assert.deepEqual(readPreprocessConfig("/nonexistent/preprocessor_config.json", INPUT), {
    ...DEFAULT_PREPROCESS,
  });
});

Deno.test("preprocessor config: honourable values are kept as stated", () => {
  assert.equal(parse({ resample: 2 }).resample, "bilinear");
  assert.equal(parse({ resample: 1 }).resample, "lanczos");
  assert.equal(parse({ resample: 4 }).resample, "box");
  assert.equal(parse({ resample: 5 }).resample, "hamming");
  assert.deepEqual(parse({ image_mean: 0.4, image_std: [1, 2, 3] }).normalize, {
    mean: [0.4, 0.4, 0.4],
    std: [1, 2, 3],
  });
  assert.equal(parse({ do_rescale: false, rescale_factor: "ignored" }).rescaleFactor, null);
  assert.equal(parse({ rescale_factor: 0.5 }).rescaleFactor, 0.5);
  assert.equal(parse({ do_normalize: false, image_std: 0 }).normalize, null);
  for (const v of [null, true, false]) assert.deepEqual(parse({ do_convert_rgb: v }), parse({}));
  assert.deepEqual(parse({ size: { width: 56, height: 56 }, image_seq_length: 16 }), parse({}));
});

Deno.test("preprocessor config: values that cannot be honoured are refused, one line each", () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ do_resize: false }, "do_resize", /^p\.json: do_resize false is not supported \(.*56x56/],
    [{ size: { height: 64, width: 64 } }, "size", /\{"height": 56, "width": 56\}/],
    [{ size: { height: 56, width: 70 } }, "size", /"width":70/],
    [{ size: { shortest_edge: 56 } }, "size", /shortest_edge/],
    [{ resample: 0 }, "resample", /resample 0 .*1 \(LANCZOS\), 2 \(BILINEAR\), 3 \(BICUBIC\)/],
    [{ resample: "bicubic" }, "resample", /resample "bicubic"/],
    [{ do_rescale: null }, "do_rescale", /do_rescale null .*true or false/],
    [{ rescale_factor: "1/255" }, "rescale_factor", /finite number/],
    [{ image_mean: [0.5, 0.5] }, "image_mean", /list of 3/],
    [{ image_std: [0.5, 0, 0.5] }, "image_std", /non-zero/],
    [{ image_std: 0 }, "image_std", /image_std 0 /],
    [{ image_seq_length: 256 }, "image_seq_length", /256 .*supported: 16,/],
  ];
  for (const [json, field, pattern] of cases) {
    assert.throws(() => parse(json), (e: unknown) => {
      assert.ok(e instanceof UnsupportedPreprocessing, `${JSON.stringify(json)}: ${e}`);
      assert.equal(e.exitCode, 3);
      assert.deepEqual([e.file, e.field, e.value], ["p.json", field, json[field]]);
      assert.match(e.message, pattern);
      assert.ok(e.message.startsWith(`p.json: ${field} `) && !e.message.includes("\n"));
      return true;
    });
  }
  assert.throws(() => parse([]), InputError);
});

Deno.test("preprocessor config: a file that is not JSON is an InputError naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "preprocessor_config.json");
    await Deno.writeTextFile(file, "{ nope");
    assert.throws(() => readPreprocessConfig(file, INPUT), (e: unknown) => {
      assert.ok(e instanceof InputError && e.message.startsWith(`${file}: not valid JSON`));
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pixel tables: HF's order and float32 roundings, per channel", () => {
  const f = Math.fround;
  // CLIP's mean and std (what an ImageNet-style config would state).
  const mean = [0.48145466, 0.4578275, 0.40821073];
  const std = [0.26862954, 0.26130258, 0.27577711];
  const cfg = { ...DEFAULT_PREPROCESS, normalize: { mean, std } };
  const tables = pixelTables(cfg);
  for (let c = 0; c < 3; c++) {
    for (let v = 0; v < 256; v++) {
      const want = f(f(f(v * 0.00392156862745098) - f(mean[c])) / f(std[c]));
      assert.equal(tables[c][v], want, `channel ${c}, ${v}`);
    }
  }
  // Four of them as numpy computes HF's normalize (float32 image, mean and std), for reference.
  assert.deepEqual([tables[0][0], tables[1][17], tables[2][200], tables[0][255]], [
    -1.7922625541687012,
    -1.4969650506973267,
    1.3637934923171997,
    1.9303361177444458,
  ]);
  // The defaults: [-1, 1], 0 → -1, 255 → 1, the same table for every channel.
  const d = pixelTables(DEFAULT_PREPROCESS);
  assert.deepEqual([d[0][0], d[0][255]], [-1, 1]);
  assert.deepEqual(d[1], d[0]);
  // No rescale: samples as float32; then normalised as they are.
  const raw = pixelTables({ ...DEFAULT_PREPROCESS, rescaleFactor: null, normalize: null });
  assert.deepEqual(raw[2], Float32Array.from({ length: 256 }, (_, v) => v));
  const noRescale = pixelTables({ ...DEFAULT_PREPROCESS, rescaleFactor: null });
  assert.equal(noRescale[0][255], (255 - 0.5) / 0.5);
});
