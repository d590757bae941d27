/**
 * Both processor file names transformers writes: preprocessor_config.json (4.x, flat) and
 * processor_config.json (5.x, settings nested under `image_processor`), for the runtime's model
 * folders and for the converter's HF sources; a folder holding both with different settings is
 * refused naming both.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readHfConfig } from "../../lib/checkpoint/hf.ts";
import { preprocessorConfigJson, sourcePreprocessorJson } from "../../lib/convert/configs.ts";
import { InputError } from "../../lib/errors.ts";
import { parsePreprocessConfig } from "../../lib/image/preprocess_config.ts";
import { PROCESSOR_FILES, readProcessorSettings } from "../../lib/image/processor_file.ts";

const FIX = new URL("../fixtures/models/", import.meta.url).pathname;
const INPUT = { imageSize: 56, imageTokens: 16 };

Deno.test("processor files: 4.57's preprocessor_config.json and 5.x's processor_config.json", async () => {
  assert.deepEqual(PROCESSOR_FILES.map((k) => k.name), [
    "preprocessor_config.json",
    "processor_config.json",
  ]);
  for (const model of ["pg1-tiny", "pg2-tiny"]) {
    const v4 = readProcessorSettings(join(FIX, model, "hf"))!;
    const v5 = readProcessorSettings(join(FIX, model, "hf5"))!;
    assert.match(v4.path, /hf\/preprocessor_config\.json$/);
    assert.match(v5.path, /hf5\/processor_config\.json$/);
    assert.equal(v5.json.image_seq_length, 16);
    assert.deepEqual(
      parsePreprocessConfig(v5.json, v5.path, INPUT),
      parsePreprocessConfig(v4.json, v4.path, INPUT),
    );
    // The converter's source settings, and so the converted folder's preprocessor_config.json.
    const cfg = await readHfConfig(join(FIX, model, "hf5"));
    const src5 = sourcePreprocessorJson(join(FIX, model, "hf5"), cfg);
    const src4 = sourcePreprocessorJson(join(FIX, model, "hf"), cfg);
    assert.deepEqual(preprocessorConfigJson(cfg, src5), preprocessorConfigJson(cfg, src4));
  }
});

Deno.test("processor files: none, no image_processor, both agreeing, both disagreeing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pg-processor-" });
  const write = (name: string, v: unknown) =>
    Deno.writeTextFileSync(join(dir, name), JSON.stringify(v));
  try {
    assert.equal(readProcessorSettings(dir), undefined);
    write("processor_config.json", { processor_class: "PaliGemmaProcessor" });
    assert.equal(readProcessorSettings(dir), undefined);
    const settings = { resample: 2, size: { height: 56, width: 56 }, image_seq_length: 16 };
    write("processor_config.json", {
      image_processor: settings,
      processor_class: "PaliGemmaProcessor",
    });
    assert.deepEqual(readProcessorSettings(dir)!.json, settings);
    assert.equal(parsePreprocessConfig(settings, "x", INPUT).resample, "bilinear");
    // Both files: the same settings (key order and processor_class aside) are fine.
    write("preprocessor_config.json", {
      image_seq_length: 16,
      processor_class: "PaliGemmaProcessor",
      size: { width: 56, height: 56 },
      resample: 2,
    });
    assert.match(readProcessorSettings(dir)!.path, /preprocessor_config\.json$/);
    write("preprocessor_config.json", { ...settings, resample: 3 });
    assert.throws(() => readProcessorSettings(dir), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(
        e.message,
        /preprocessor_config\.json and .*processor_config\.json state different/,
      );
      return true;
    });
    write("preprocessor_config.json", settings);
    write("processor_config.json", { image_processor: [1] });
    assert.throws(() => readProcessorSettings(dir), /image_processor must be an object/);
    Deno.writeTextFileSync(join(dir, "processor_config.json"), "{ nope");
    assert.throws(() => readProcessorSettings(dir), /processor_config\.json: not valid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
