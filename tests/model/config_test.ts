import assert from "node:assert/strict";
import { parseHfConfig, toHfConfigJson } from "../../lib/model/config.ts";
import {
  canonicalName,
  expectedTensorList,
  expectedTensors,
  LM_HEAD,
  partOf,
} from "../../lib/model/names.ts";
import { preset, PRESET_NAMES, tinyConfig } from "./presets.ts";
import { InputError } from "../../lib/errors.ts";

/** Shaped like google/paligemma-3b-pt-224's config.json (transformers 4.41). */
const PG1_HUB = {
  _name_or_path: "",
  architectures: ["PaliGemmaForConditionalGeneration"],
  bos_token_id: 2,
  eos_token_id: 1,
  hidden_size: 2048,
  ignore_index: -100,
  image_token_index: 257152,
  model_type: "paligemma",
  pad_token_id: 0,
  projection_dim: 2048,
  text_config: {
    hidden_size: 2048,
    intermediate_size: 16384,
    model_type: "gemma",
    num_attention_heads: 8,
    num_hidden_layers: 18,
    num_image_tokens: 256,
    num_key_value_heads: 1,
    torch_dtype: "float32",
    vocab_size: 257216,
  },
  torch_dtype: "float32",
  transformers_version: "4.41.0.dev0",
  vision_config: {
    hidden_size: 1152,
    intermediate_size: 4304,
    model_type: "siglip_vision_model",
    num_attention_heads: 16,
    num_hidden_layers: 27,
    num_image_tokens: 256,
    patch_size: 14,
    projection_dim: 2048,
    projector_hidden_act: "gelu_fast",
    vision_use_head: false,
  },
  vocab_size: 257216,
};

/** Shaped like google/paligemma2-3b-pt-448's config.json: many Gemma 2 keys left out. */
const PG2_HUB = {
  architectures: ["PaliGemmaForConditionalGeneration"],
  bos_token_id: 2,
  eos_token_id: [1, 107],
  hidden_size: 2048,
  image_token_index: 257152,
  model_type: "paligemma",
  num_hidden_layers: 26,
  pad_token_id: 0,
  projection_dim: 2304,
  text_config: {
    hidden_activation: "gelu_pytorch_tanh",
    hidden_size: 2304,
    intermediate_size: 9216,
    model_type: "gemma2",
    num_attention_heads: 8,
    num_hidden_layers: 26,
    num_image_tokens: 1024,
    num_key_value_heads: 4,
    torch_dtype: "float32",
    vocab_size: 257216,
  },
  torch_dtype: "bfloat16",
  transformers_version: "4.47.0.dev0",
  vision_config: {
    hidden_size: 1152,
    image_size: 448,
    intermediate_size: 4304,
    model_type: "siglip_vision_model",
    num_attention_heads: 16,
    num_hidden_layers: 27,
    num_image_tokens: 1024,
    num_positions: 1024,
    patch_size: 14,
    projection_dim: 2304,
    torch_dtype: "float32",
    vision_use_head: false,
  },
};

Deno.test("HF config.json of PaliGemma 1 3B 224 parses to the preset", () => {
  const cfg = parseHfConfig(PG1_HUB, "config.json");
  assert.deepEqual(cfg, preset("pg1-3b-224"));
  assert.equal(cfg.numImageTokens, 256);
  assert.equal(cfg.text.queryPreAttnScalar, 256);
  assert.equal(cfg.text.attnLogitSoftcap, null);
});

Deno.test("HF config.json of PaliGemma 2 fills Gemma 2 defaults (soft-caps, window, scalar)", () => {
  const cfg = parseHfConfig(PG2_HUB, "config.json");
  assert.deepEqual(cfg, preset("pg2-3b-448"));
  assert.equal(cfg.version, 2);
  assert.equal(cfg.text.headDim, 256);
  assert.equal(cfg.text.queryPreAttnScalar, 256);
  assert.equal(cfg.text.attnLogitSoftcap, 50);
  assert.equal(cfg.text.finalLogitSoftcap, 30);
  assert.equal(cfg.text.slidingWindow, 4096);
  assert.equal(cfg.numImageTokens, 1024);
  assert.deepEqual(cfg.eosTokenIds, [1, 107]);
  assert.equal(cfg.eosTokenId, 1);
});

Deno.test("PaliGemma 2 28B: head_dim 128 and query_pre_attn_scalar 144 from the file", () => {
  const json = structuredClone(PG2_HUB) as Record<string, unknown> & typeof PG2_HUB;
  json.projection_dim = 4608;
  Object.assign(json.text_config, {
    hidden_size: 4608,
    intermediate_size: 36864,
    num_attention_heads: 32,
    num_key_value_heads: 16,
    num_hidden_layers: 46,
    head_dim: 128,
    query_pre_attn_scalar: 144,
  });
  json.vision_config.image_size = 896;
  assert.deepEqual(parseHfConfig(json, "config.json"), preset("pg2-28b-896"));
});

Deno.test("HF config defaults: no text_config is PG1's Gemma; explicit nulls turn soft-caps off", () => {
  const bare = parseHfConfig({ model_type: "paligemma" }, "c.json");
  assert.equal(bare.text.hiddenSize, 2048);
  assert.equal(bare.text.numKvHeads, 1);
  assert.equal(bare.vision.intermediateSize, 4096, "HF's (wrong) default vision MLP width");
  assert.equal(bare.imageTokenIndex, 256000);
  const off = parseHfConfig({
    ...PG2_HUB,
    text_config: {
      ...PG2_HUB.text_config,
      final_logit_softcapping: null,
      attn_logit_softcapping: null,
      sliding_window: null,
      rope_parameters: { rope_theta: 20000 },
      tie_word_embeddings: false,
    },
  }, "c.json");
  assert.equal(off.text.finalLogitSoftcap, null);
  assert.equal(off.text.attnLogitSoftcap, null);
  assert.equal(off.text.slidingWindow, null);
  assert.equal(off.text.ropeTheta, 20000);
  assert.equal(off.text.tieWordEmbeddings, false);
  assert.equal(expectedTensorList(off).at(-1)!.name, LM_HEAD);
});

Deno.test("HF config errors name the file and key", () => {
  const bad = (json: unknown, re: RegExp) =>
    assert.throws(() => parseHfConfig(json, "m/config.json"), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, re);
      return true;
    });
  bad([], /m\/config\.json: expected a JSON object/);
  bad({ model_type: "llava" }, /model_type 'llava' is not paligemma/);
  bad(
    { ...PG1_HUB, text_config: { ...PG1_HUB.text_config, hidden_size: "big" } },
    /text_config\.hidden_size: expected a whole number/,
  );
  bad(
    { ...PG1_HUB, projection_dim: 1024 },
    /projection_dim 1024 differs from the text hidden size 2048/,
  );
  bad(
    { ...PG1_HUB, text_config: { ...PG1_HUB.text_config, num_key_value_heads: 3 } },
    /8 query heads are not a multiple of 3/,
  );
});

Deno.test("every preset and tiny config survives config.json round trip", () => {
  const all = [
    ...PRESET_NAMES.map(preset),
    tinyConfig(1),
    tinyConfig(2),
    tinyConfig(1, { untied: true }),
  ];
  for (const cfg of all) {
    const json = JSON.parse(JSON.stringify(toHfConfigJson(cfg)));
    assert.deepEqual(parseHfConfig(json, "c.json"), cfg);
  }
});

Deno.test("canonical names: HF >= 4.52 names normalise to the legacy ones", () => {
  assert.equal(
    canonicalName("model.language_model.layers.3.mlp.up_proj.weight"),
    "language_model.model.layers.3.mlp.up_proj.weight",
  );
  assert.equal(
    canonicalName("model.vision_tower.vision_model.post_layernorm.bias"),
    "vision_tower.vision_model.post_layernorm.bias",
  );
  assert.equal(
    canonicalName("model.multi_modal_projector.linear.weight"),
    "multi_modal_projector.linear.weight",
  );
  assert.equal(canonicalName("lm_head.weight"), LM_HEAD);
  assert.equal(
    canonicalName("language_model.model.norm.weight"),
    "language_model.model.norm.weight",
  );
  assert.equal(partOf("language_model.lm_head.weight"), "text");
  assert.equal(partOf("vision_tower.vision_model.post_layernorm.bias"), "vision");
  assert.equal(partOf("something.else"), undefined);
});

/** Parameter count from closed-form formulas (independent of the name list). */
function closedForm(version: 1 | 2, cfgName: Parameters<typeof preset>[0]) {
  const c = preset(cfgName);
  const v = c.vision;
  const W = v.hiddenSize;
  const vision = W * 3 * v.patchSize ** 2 + W + c.numImageTokens * W +
    v.numLayers * (4 * (W * W + W) + 2 * W * v.intermediateSize + v.intermediateSize + W + 4 * W) +
    2 * W;
  const projector = c.projectionDim * W + c.projectionDim;
  const t = c.text;
  const D = t.hiddenSize;
  const perLayer = 2 * t.numHeads * t.headDim * D + 2 * t.numKvHeads * t.headDim * D +
    3 * D * t.intermediateSize + (version === 2 ? 4 : 2) * D;
  const text = t.vocabSize * D + t.numLayers * perLayer + D;
  return { vision, projector, text };
}

Deno.test("expectedTensors counts match closed-form parameter counts for the presets", () => {
  for (const name of PRESET_NAMES) {
    const groups = expectedTensors(preset(name));
    const sum = (part: "vision" | "projector" | "text") =>
      groups[part].reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
    const want = closedForm(name.startsWith("pg1") ? 1 : 2, name);
    assert.deepEqual(
      { vision: sum("vision"), projector: sum("projector"), text: sum("text") },
      want,
      name,
    );
    for (const part of ["vision", "projector", "text"] as const) {
      assert.ok(groups[part].every((t) => t.part === part && partOf(t.name) === part));
    }
  }
  // PG1 3B: "2.92B" parameters on the hub.
  const pg1 = closedForm(1, "pg1-3b-224");
  const total = pg1.vision + pg1.projector + pg1.text;
  assert.ok(total > 2.90e9 && total < 2.94e9, String(total));
});

Deno.test("transformers 5 config.json: parsed as 4.57's, its unread top-level vocab_size ignored", () => {
  const fix = new URL("../fixtures/models/", import.meta.url).pathname;
  for (const model of ["pg1-tiny", "pg2-tiny"]) {
    const read = (f: string) =>
      JSON.parse(Deno.readTextFileSync(`${fix}${model}/${f}/config.json`));
    const v5 = read("hf5");
    // What 5.24 writes (tests/fixtures/README.md): 257152 at the top, the real size in text_config.
    assert.equal(v5.vocab_size, 257152);
    assert.equal(v5.text_config.vocab_size, 2153);
    assert.ok(v5.text_config.rope_parameters && v5.text_config.rope_theta === undefined);
    const cfg = parseHfConfig(v5, "hf5/config.json");
    assert.deepEqual(cfg, parseHfConfig(read("hf"), "hf/config.json"), model);
    assert.equal(cfg.text.vocabSize, 2153);
    assert.equal(cfg.imageTokenIndex, 2152);
  }
});

Deno.test("config.json fields that disagree are refused naming both", () => {
  const base = toHfConfigJson(tinyConfig(1));
  const text = base.text_config as Record<string, unknown>;
  const bad = (json: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => parseHfConfig(json, "c.json"), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, re);
      return true;
    });
  bad(
    { ...base, vocab_size: 5000, text_config: { ...text, vocab_size: 4000 } },
    /^c\.json: vocab_size 5000 disagrees with text_config\.vocab_size 4000$/,
  );
  bad(
    { ...base, image_token_index: 4000, image_token_id: 4001 },
    /^c\.json: image_token_index 4000 disagrees with image_token_id 4001$/,
  );
  // Agreeing values, transformers 5's alias alone, and its unread default are all fine.
  const ok = parseHfConfig({ ...base, image_token_id: base.image_token_index }, "c.json");
  assert.equal(ok.imageTokenIndex, base.image_token_index);
  const { image_token_index: _, ...noIndex } = base;
  assert.equal(
    parseHfConfig({ ...noIndex, image_token_id: 77 }, "c.json").imageTokenIndex,
    77,
  );
  assert.equal(
    parseHfConfig({ ...base, vocab_size: 257152 }, "c.json").text.vocabSize,
    text.vocab_size,
  );
  // No text_config.vocab_size: the top-level one is the size.
  const { vocab_size: __, ...textNoVocab } = text;
  assert.equal(
    parseHfConfig({ ...base, vocab_size: 3000, text_config: textNoVocab }, "c.json").text.vocabSize,
    3000,
  );
});
