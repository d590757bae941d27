import assert from "node:assert/strict";
import { join } from "node:path";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { bigVisionLayout, inferBigVisionConfig } from "../../lib/checkpoint/bigvision.ts";
import { writeNpz } from "../../lib/checkpoint/npz.ts";
import { openSafetensors, writeSafetensors } from "../../lib/checkpoint/safetensors.ts";
import type { TensorRef, TensorStore, WritableTensor } from "../../lib/checkpoint/tensor.ts";
import { InputError } from "../../lib/errors.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";
import { expectedTensorList, LM_HEAD } from "../../lib/model/names.ts";
import { bigVisionVocab, preset, PRESET_NAMES, tinyConfig } from "./presets.ts";
import { syntheticBytes, writeSyntheticBigVision, writeSyntheticHf } from "../../lib/synthetic.ts";

async function withTemp(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts both checkpoints hold the same canonical names, dtypes, shapes and bytes. */
async function assertSameTensors(a: Map<string, TensorRef>, b: Map<string, TensorRef>) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, ra] of a) {
    const rb = b.get(name)!;
    assert.equal(ra.dtype, rb.dtype, name);
    assert.deepEqual(ra.shape, rb.shape, name);
    assert.deepEqual(await ra.read(), await rb.read(), name);
  }
}

/** The config as big_vision inference reports it: only one eos id. */
function withoutEosList(c: PaliGemmaConfig): PaliGemmaConfig {
  const { eosTokenIds: _, ...rest } = c;
  return rest;
}

for (const version of [1, 2] as const) {
  for (const dtype of ["F32", "BF16"] as const) {
    Deno.test(`npz and HF layouts of the same synthetic weights agree (PG${version}, ${dtype})`, async () => {
      await withTemp(async (dir) => {
        const cfg = tinyConfig(version);
        await writeSyntheticBigVision(join(dir, "bv.npz"), cfg, { dtype, prefix: "params/" });
        // A tiny shard limit forces the sharded layout; PG2 uses HF >= 4.52 names.
        await writeSyntheticHf(join(dir, "hf"), cfg, {
          dtype,
          maxShardBytes: 20_000,
          newNames: version === 2,
        });
        const bv = await openCheckpoint(join(dir, "bv.npz"));
        const hf = await openCheckpoint(join(dir, "hf"));
        try {
          assert.equal(bv.format, "big_vision");
          assert.equal(hf.format, "hf");
          assert.deepEqual(bv.config, cfg, "inferred config = written config");
          assert.deepEqual(hf.config, cfg, "config.json round trip");
          await assertSameTensors(bv.tensors, hf.tensors);
          const q = "language_model.model.layers.0.self_attn.q_proj.weight";
          const shape = expectedTensorList(cfg).find((t) => t.name === q)!.shape;
          assert.deepEqual(await hf.tensors.get(q)!.read(), syntheticBytes(q, shape, dtype));
        } finally {
          bv.close();
          hf.close();
        }
      });
    });
  }
}

Deno.test("synthetic weights are deterministic, seeded, and bf16 is f32 rounded", () => {
  const name = "language_model.model.layers.0.mlp.up_proj.weight";
  const a = syntheticBytes(name, [40, 32], "F32", 3);
  assert.deepEqual(a, syntheticBytes(name, [40, 32], "F32", 3));
  assert.notDeepEqual(a, syntheticBytes(name, [40, 32], "F32", 4));
  assert.notDeepEqual(a, syntheticBytes(name + "x", [40, 32], "F32", 3));
  const f = new Float32Array(a.buffer);
  const bound = Math.sqrt(3 / 32);
  assert.ok(f.every((x) => Math.abs(x) <= bound), "uniform within ±sqrt(3/fan_in)");
  const mean = f.reduce((s, x) => s + x, 0) / f.length;
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  const b = new Uint16Array(syntheticBytes(name, [40, 32], "BF16", 3).buffer);
  const dv = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < f.length; i++) {
    dv.setUint32(0, b[i] << 16, true);
    const back = dv.getFloat32(0, true);
    // round to nearest: the bf16 value is within half a bf16 ulp (2^-8 relative) of the f32
    assert.ok(Math.abs(back - f[i]) <= Math.abs(f[i]) * 2 ** -8, `${i}: ${back} vs ${f[i]}`);
  }
});

Deno.test("untied HF checkpoint has a separate lm_head; tied ignores a stored one", async () => {
  await withTemp(async (dir) => {
    const cfg = tinyConfig(1, { untied: true });
    await writeSyntheticHf(join(dir, "hf"), cfg, { dtype: "F32" });
    const ck = await openCheckpoint(join(dir, "hf"));
    try {
      assert.equal(ck.config.text.tieWordEmbeddings, false);
      assert.ok(ck.tensors.has(LM_HEAD));
    } finally {
      ck.close();
    }
    // Flip the config to tied: the lm_head in the file is ignored.
    const cfgPath = join(dir, "hf", "config.json");
    const json = JSON.parse(await Deno.readTextFile(cfgPath));
    json.tie_word_embeddings = true;
    json.text_config.tie_word_embeddings = true;
    await Deno.writeTextFile(cfgPath, JSON.stringify(json));
    const tied = await openCheckpoint(join(dir, "hf"));
    try {
      assert.ok(!tied.tensors.has(LM_HEAD));
    } finally {
      tied.close();
    }
  });
});

/** A TensorStore of shapes only, for config inference of full-size layouts. */
function shapeStore(members: { key: string; shape: readonly number[] }[]): TensorStore {
  const refs = new Map<string, TensorRef>(members.map((m) => [`params/${m.key}`, {
    name: `params/${m.key}`,
    dtype: "BF16",
    shape: m.shape,
    byteLength: 0,
    read: () => Promise.reject(new Error("no data")),
  }]));
  return {
    path: "shapes.npz",
    format: "npz",
    names: () => [...refs.keys()],
    get: (n) => refs.get(n),
    close: () => {},
  };
}

Deno.test("config inference from big_vision shapes recovers every published preset", () => {
  for (const name of PRESET_NAMES) {
    const cfg = bigVisionVocab(preset(name));
    const inferred = inferBigVisionConfig(shapeStore(bigVisionLayout(cfg)));
    assert.deepEqual(inferred, withoutEosList(cfg), name);
  }
  const big = inferBigVisionConfig(
    shapeStore(bigVisionLayout(bigVisionVocab(preset("pg2-28b-448")))),
  );
  assert.equal(big.text.queryPreAttnScalar, 144);
  assert.equal(big.numImageTokens, 1024);
  assert.equal(big.text.vocabSize, 257152);
  assert.equal(big.imageTokenIndex, 257152);
});

Deno.test("published layouts have the sizes of model-reference section 1", () => {
  const pg1 = new Map(
    bigVisionLayout(bigVisionVocab(preset("pg1-3b-224"))).map((m) => [m.key, m.shape]),
  );
  assert.deepEqual(pg1.get("img/embedding/kernel"), [14, 14, 3, 1152]);
  assert.deepEqual(pg1.get("img/pos_embedding"), [1, 256, 1152]);
  assert.deepEqual(pg1.get("img/Transformer/encoderblock/MlpBlock_0/Dense_0/kernel"), [
    27,
    1152,
    4304,
  ]);
  assert.deepEqual(
    pg1.get("img/Transformer/encoderblock/MultiHeadDotProductAttention_0/query/kernel"),
    [27, 1152, 16, 72],
  );
  assert.deepEqual(pg1.get("img/head/kernel"), [1152, 2048]);
  assert.deepEqual(pg1.get("llm/embedder/input_embedding"), [257152, 2048]);
  assert.deepEqual(pg1.get("llm/layers/attn/q_einsum/w"), [18, 8, 2048, 256]);
  assert.deepEqual(pg1.get("llm/layers/attn/kv_einsum/w"), [18, 2, 1, 2048, 256]);
  assert.deepEqual(pg1.get("llm/layers/attn/attn_vec_einsum/w"), [18, 8, 256, 2048]);
  assert.deepEqual(pg1.get("llm/layers/mlp/gating_einsum"), [18, 2, 2048, 16384]);
  assert.deepEqual(pg1.get("llm/layers/mlp/linear"), [18, 16384, 2048]);
  assert.equal(pg1.has("llm/layers/post_ffw_norm/scale"), false);
  const pg2 = new Map(bigVisionLayout(preset("pg2-3b-896")).map((m) => [m.key, m.shape]));
  assert.deepEqual(pg2.get("img/pos_embedding"), [1, 4096, 1152]);
  assert.deepEqual(pg2.get("img/head/kernel"), [1152, 2304]);
  assert.deepEqual(pg2.get("llm/layers/post_ffw_norm/scale"), [26, 2304]);
  assert.deepEqual(pg2.get("llm/layers/attn/kv_einsum/w"), [26, 2, 4, 2304, 256]);
});

// ---- bad input ----

async function rejects(path: string, pattern: RegExp): Promise<void> {
  await assert.rejects(() => openCheckpoint(path), (err: unknown) => {
    assert.ok(err instanceof InputError, String(err));
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes("\n"), "one line");
    return true;
  });
}

/** Copies an npz, dropping or reshaping members. */
async function rewriteNpz(
  from: string,
  to: string,
  edit: (key: string, shape: readonly number[]) => readonly number[] | null,
): Promise<void> {
  const { openNpz } = await import("../../lib/checkpoint/npz.ts");
  const src = await openNpz(from);
  try {
    const out: WritableTensor[] = [];
    for (const name of src.names()) {
      const ref = src.get(name)!;
      const shape = edit(name, ref.shape);
      if (shape === null) continue;
      const bytes = shape.reduce((a, b) => a * b, 1) * 2;
      out.push({ name, dtype: ref.dtype, shape, data: () => new Uint8Array(bytes) });
    }
    await writeNpz(to, out);
  } finally {
    src.close();
  }
}

Deno.test("bad input: missing or misshapen tensors, unknown formats", async () => {
  await withTemp(async (dir) => {
    const cfg = tinyConfig(2);
    const good = join(dir, "bv.npz");
    await writeSyntheticBigVision(good, cfg);
    const kv = "llm/layers/attn/kv_einsum/w";
    await rewriteNpz(good, join(dir, "missing.npz"), (k, s) => (k === kv ? null : s));
    await rejects(
      join(dir, "missing.npz"),
      /missing\.npz: missing tensor llm\/layers\/attn\/kv_einsum\/w/,
    );
    const ffw = "llm/layers/post_ffw_norm/scale";
    await rewriteNpz(good, join(dir, "missing2.npz"), (k, s) => (k === ffw ? null : s));
    await rejects(join(dir, "missing2.npz"), /missing tensor llm\/layers\/post_ffw_norm\/scale/);
    await rewriteNpz(good, join(dir, "shape.npz"), (k, s) => (k === ffw ? [2, s[1]] : s));
    await rejects(
      join(dir, "shape.npz"),
      /shape\.npz: tensor llm\/layers\/post_ffw_norm\/scale shape \[2, 20\] does not fit the config: expected \[3, 20\]/,
    );

    // HF: a config demanding a larger vocabulary than the stored embedding.
    const hf = join(dir, "hf");
    await writeSyntheticHf(hf, cfg);
    const cfgPath = join(hf, "config.json");
    const json = JSON.parse(await Deno.readTextFile(cfgPath));
    json.text_config.vocab_size = json.vocab_size = 80; // both: a disagreement is its own error
    await Deno.writeTextFile(cfgPath, JSON.stringify(json));
    await rejects(
      hf,
      /tensor language_model\.model\.embed_tokens\.weight shape \[64, 20\] does not fit the config: expected \[80, 20\]/,
    );
    // HF: a missing tensor.
    json.text_config.vocab_size = json.vocab_size = 64;
    await Deno.writeTextFile(cfgPath, JSON.stringify(json));
    const store = await openSafetensors(join(hf, "model.safetensors"));
    const keep: WritableTensor[] = [];
    for (const name of store.names()) {
      if (name.endsWith("layers.1.mlp.down_proj.weight")) continue;
      const ref = store.get(name)!;
      keep.push({ name, dtype: ref.dtype, shape: ref.shape, data: () => ref.read() });
    }
    const hf2 = join(dir, "hf2");
    await Deno.mkdir(hf2);
    await writeSafetensors(join(hf2, "model.safetensors"), keep);
    store.close();
    await Deno.copyFile(cfgPath, join(hf2, "config.json"));
    await rejects(
      hf2,
      /hf2\/model\.safetensors: missing tensor language_model\.model\.layers\.1\.mlp\.down_proj\.weight/,
    );

    // Unknown formats and bad config.json.
    await Deno.writeTextFile(join(dir, "notes.txt"), "hello");
    await rejects(join(dir, "notes.txt"), /unknown checkpoint format/);
    await Deno.mkdir(join(dir, "empty"));
    await rejects(join(dir, "empty"), /unknown checkpoint format/);
    await rejects(join(dir, "nope"), /nope: no such file or directory/);
    await Deno.writeTextFile(cfgPath, "{ not json");
    await rejects(hf, /config\.json: not valid JSON/);
    await Deno.writeTextFile(
      cfgPath,
      JSON.stringify({ ...json, text_config: { model_type: "llama" } }),
    );
    await rejects(hf, /text_config\.model_type 'llama' is not supported/);
  });
});

Deno.test("ONNX folders are detected and described, not opened", async () => {
  await withTemp(async (dir) => {
    await Deno.mkdir(join(dir, "onnx"));
    await Deno.writeTextFile(join(dir, "onnx", "decoder_model_merged.onnx"), "x".repeat(10));
    await Deno.writeTextFile(
      join(dir, "config.json"),
      JSON.stringify({ model_type: "paligemma", projection_dim: 2048, image_token_index: 257152 }),
    );
    const ck = await openCheckpoint(dir);
    assert.equal(ck.format, "onnx");
    assert.equal(ck.tensors.size, 0);
    assert.deepEqual(ck.onnxFiles, [{ name: "decoder_model_merged.onnx", bytes: 10 }]);
    assert.deepEqual(ck.config, {
      ...preset("pg1-3b-224"),
      vision: { ...preset("pg1-3b-224").vision, intermediateSize: 4096 },
      text: { ...preset("pg1-3b-224").text, vocabSize: 257152 },
    });
  });
});
