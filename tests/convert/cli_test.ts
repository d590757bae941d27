/** The `convert` command: output folder layout, configs, adding a precision, atomic failure. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertCommand } from "../../cli/convert.ts";
import { InputError, UsageError } from "../../lib/errors.ts";
import { describeFormat, linearRole, weightFormat } from "../../lib/convert/layers.ts";

const PG1 = new URL("../fixtures/models/pg1-tiny/", import.meta.url).pathname;

Deno.test("convert CLI: writes the transformers.js layout, adds q8 beside fp32", async () => {
  const parent = await Deno.makeTempDir({ prefix: "pg-convert-cli-" });
  const dst = join(parent, "model");
  try {
    assert.equal(await convertCommand.run([join(PG1, "hf"), dst]), 0);
    assert.equal(await convertCommand.run([join(PG1, "hf"), dst, "--dtype", "q8"]), 0);
    const onnx = [...Deno.readDirSync(join(dst, "onnx"))].map((e) => e.name).sort();
    assert.deepEqual(onnx, [
      "decoder_model_merged.onnx",
      "decoder_model_merged_quantized.onnx",
      "embed_tokens.onnx",
      "embed_tokens_quantized.onnx",
      "vision_encoder.onnx",
      "vision_encoder_quantized.onnx",
    ]);
    for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
      assert.ok((await Deno.stat(join(dst, f))).isFile, f);
    }
    const cfg = JSON.parse(await Deno.readTextFile(join(dst, "config.json")));
    const hf = JSON.parse(await Deno.readTextFile(join(PG1, "hf", "config.json")));
    const size = hf.vision_config.image_size;
    const tokens = (size / hf.vision_config.patch_size) ** 2;
    assert.equal(cfg.text_config.head_dim, hf.text_config.head_dim);
    assert.equal(cfg.num_image_tokens, tokens);
    assert.equal(cfg.image_token_index, hf.image_token_index);
    const pre = JSON.parse(await Deno.readTextFile(join(dst, "preprocessor_config.json")));
    assert.equal(pre.processor_class, "PaliGemmaProcessor");
    assert.equal(pre.image_processor_type, "SiglipImageProcessor");
    assert.equal(pre.image_seq_length, tokens);
    assert.deepEqual(pre.size, { height: size, width: size });
    assert.equal(pre.resample, 3);
    // Only the finished folder is left in the parent.
    assert.deepEqual([...Deno.readDirSync(parent)].map((e) => e.name), ["model"]);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("convert CLI: bad input leaves nothing behind", async () => {
  const parent = await Deno.makeTempDir({ prefix: "pg-convert-cli-" });
  try {
    await assert.rejects(
      convertCommand.run([join(PG1, "missing"), join(parent, "m")]),
      InputError,
    );
    for (const dtype of ["int3", "constructor", "__proto__", "toString"]) {
      await assert.rejects(
        convertCommand.run([join(PG1, "hf"), join(parent, "m"), "--dtype", dtype]),
        UsageError,
      );
    }
    await assert.rejects(convertCommand.run([join(PG1, "hf")]), UsageError);
    assert.deepEqual([...Deno.readDirSync(parent)], []);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

const PG2 = new URL("../fixtures/models/pg2-tiny/", import.meta.url).pathname;
const TOK2 = ["--tokenizer", join(PG2, "hf", "tokenizer.model")];

Deno.test("convert CLI: --config supplies PG2 values a big_vision npz cannot carry", async () => {
  const parent = await Deno.makeTempDir({ prefix: "pg-convert-cli-" });
  const dst = join(parent, "model");
  try {
    const hfPath = join(PG2, "hf", "config.json");
    const hf = JSON.parse(await Deno.readTextFile(hfPath));
    assert.equal(
      await convertCommand.run([join(PG2, "bv.npz"), dst, "--config", hfPath, ...TOK2]),
      0,
    );
    const cfg = JSON.parse(await Deno.readTextFile(join(dst, "config.json")));
    for (
      const k of ["query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping"]
    ) {
      assert.equal(cfg.text_config[k], hf.text_config[k], k);
    }
    // A config whose sizes disagree with the tensors is refused, naming the key.
    const bad = join(parent, "bad.json");
    hf.text_config.intermediate_size += 8;
    await Deno.writeTextFile(bad, JSON.stringify(hf));
    await assert.rejects(
      convertCommand.run([join(PG2, "bv.npz"), join(parent, "m2"), "--config", bad, ...TOK2]),
      (e: Error) => e instanceof InputError && /text_config\.intermediate_size/.test(e.message),
    );
    await Deno.writeTextFile(bad, "{ not json");
    await assert.rejects(
      convertCommand.run([join(PG2, "bv.npz"), join(parent, "m2"), "--config", bad, ...TOK2]),
      InputError,
    );
    assert.deepEqual([...Deno.readDirSync(parent)].map((e) => e.name).sort(), [
      "bad.json",
      "model",
    ]);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("convert: progress names each group's storage", () => {
  assert.equal(describeFormat(weightFormat("fp16")), "fp16: every weight fp16");
  assert.equal(
    describeFormat(weightFormat("q4")),
    "q4: vision fp16-as-fp32, attention 8-bit blocks of 16, MLP 4-bit blocks of 32 with zero points " +
      "(input scaling), table 8-bit blocks of 32, accuracy_level 4",
  );
  assert.equal(
    describeFormat(weightFormat("q8", { matmul: "dq8" })),
    "q8: vision fp16-as-fp32, attention 8-bit blocks of 16, MLP 8-bit blocks of 32, table 8-bit blocks " +
      "of 32, accuracy_level 4, 8-bit layers as DynamicQuantizeMatMul",
  );
});

Deno.test("convert: each checkpoint tensor's group (linearRole)", () => {
  const roles: [string, string | null][] = [
    ["vision_tower.vision_model.encoder.layers.3.self_attn.q_proj.weight", "vision"],
    ["vision_tower.vision_model.encoder.layers.3.self_attn.out_proj.weight", "vision"],
    ["vision_tower.vision_model.encoder.layers.3.mlp.fc2.weight", "vision"],
    ["vision_tower.vision_model.encoder.layers.3.mlp.fc2.bias", null],
    ["vision_tower.vision_model.encoder.layers.3.layer_norm1.weight", null],
    ["vision_tower.vision_model.post_layernorm.weight", null],
    ["vision_tower.vision_model.embeddings.patch_embedding.weight", null],
    ["vision_tower.vision_model.embeddings.position_embedding.weight", null],
    ["multi_modal_projector.linear.weight", "vision"],
    ["language_model.model.layers.7.self_attn.o_proj.weight", "attention"],
    ["language_model.model.layers.7.mlp.down_proj.weight", "mlp"],
    ["language_model.model.layers.7.pre_feedforward_layernorm.weight", null],
    ["language_model.model.embed_tokens.weight", null],
    ["language_model.lm_head.weight", null],
  ];
  for (const [name, role] of roles) assert.equal(linearRole(name), role, name);
});
