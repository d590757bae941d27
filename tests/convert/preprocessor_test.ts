/**
 * `convert` writes preprocessor_config.json with the HF source folder's values (unknown fields
 * included) over PaliGemma's defaults; a big_vision npz gets the defaults. A source file the
 * runtime could not honour is refused, naming it, before any graph is written.
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { preprocessorConfigJson } from "../../lib/convert/configs.ts";
import { convertModel } from "../../lib/convert/convert.ts";
import { UnsupportedPreprocessing } from "../../lib/image/preprocess_config.ts";
import { convertFixture, FIX, withTempDir } from "../generate/fixture_models.ts";

const HF = join(FIX, "pg1-tiny", "hf");
const readJson = (p: string) => JSON.parse(fs.readFileSync(p, "utf8"));

/** A copy of the fixture's HF folder with `pre` as its preprocessor_config.json. */
function hfSource(dst: string, pre: Record<string, unknown>): string {
  fs.mkdirSync(dst);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
    fs.copyFileSync(join(HF, f), join(dst, f));
  }
  fs.writeFileSync(join(dst, "preprocessor_config.json"), JSON.stringify(pre));
  return dst;
}

/** Converts `src` (fp32) into `dst`, with the fixture's tokenizer beside (as the CLI copies it). */
async function convert(src: string, dst: string): Promise<void> {
  const ck = await openCheckpoint(src);
  try {
    await convertModel(ck, dst, { precision: "fp32" });
  } finally {
    ck.close();
  }
  fs.copyFileSync(join(HF, "tokenizer.json"), join(dst, "tokenizer.json"));
}

Deno.test("convert carries the HF source's preprocessor_config.json values", () =>
  withTempDir(async (tmp) => {
    const pre = {
      ...readJson(join(HF, "preprocessor_config.json")),
      image_mean: [0.25, 0.5, 0.75],
      image_std: 0.25,
      resample: 2,
      custom_field: "kept",
    };
    const out = join(tmp, "out");
    await convert(hfSource(join(tmp, "src"), pre), out);
    const written = readJson(join(out, "preprocessor_config.json"));
    for (const [k, v] of Object.entries(pre)) assert.deepEqual(written[k], v, k);
    const dir = await openModelDir(out);
    assert.deepEqual(dir.preprocess, {
      resample: "bilinear",
      rescaleFactor: 0.00392156862745098,
      normalize: { mean: [0.25, 0.5, 0.75], std: [0.25, 0.25, 0.25] },
    });

    // A .safetensors file of the folder as the source: the same file is found beside it.
    const fromFile = join(tmp, "from-file");
    await convert(join(tmp, "src", "model.safetensors"), fromFile);
    assert.deepEqual(readJson(join(fromFile, "preprocessor_config.json")), written);

    // The fixture's own file (HF's values) and a big_vision npz (no file): PaliGemma's defaults.
    const fromHf = join(tmp, "hf");
    await convertFixture("pg1-tiny", "hf", fromHf);
    const hfWritten = readJson(join(fromHf, "preprocessor_config.json"));
    assert.deepEqual(hfWritten, {
      ...hfWritten,
      ...readJson(join(HF, "preprocessor_config.json")),
    });
    const fromNpz = join(tmp, "npz");
    await convertFixture("pg1-tiny", "bv.npz", fromNpz);
    const cfg = (await openModelDir(fromNpz)).config;
    assert.deepEqual(
      readJson(join(fromNpz, "preprocessor_config.json")),
      preprocessorConfigJson(cfg),
    );

    // A source value the runtime cannot honour: refused naming the source file, nothing written.
    const bad = hfSource(join(tmp, "bad"), { ...pre, resample: 0 });
    const never = join(tmp, "never");
    await assert.rejects(convert(bad, never), (e: unknown) => {
      assert.ok(e instanceof UnsupportedPreprocessing, String(e));
      assert.equal(e.file, join(bad, "preprocessor_config.json"));
      assert.equal(e.field, "resample");
      return true;
    });
    assert.ok(!fs.existsSync(never), "no output before the check");
  }));
