/**
 * The big_vision → canonical mapping, checked element by element against index formulas written
 * here from model-reference section 1 (not from the library's layout table).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { openNpz } from "../../lib/checkpoint/npz.ts";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import type { TensorRef, TensorStore } from "../../lib/checkpoint/tensor.ts";
import { expectedTensorList } from "../../lib/model/names.ts";
import { tinyConfig } from "./presets.ts";
import { writeSyntheticBigVision } from "../../lib/synthetic.ts";

async function values(ref: TensorRef | undefined, what: string): Promise<Float32Array> {
  assert.ok(ref, `missing ${what}`);
  return toFloat32(await ref.read(), ref.dtype);
}

/** Row-major flat offset of `idx` in `shape`. */
function at(shape: readonly number[], ...idx: number[]): number {
  assert.equal(idx.length, shape.length);
  let off = 0;
  idx.forEach((i, a) => {
    assert.ok(i >= 0 && i < shape[a], `index ${i} outside axis ${a} of [${shape}]`);
    off = off * shape[a] + i;
  });
  return off;
}

/** Every multi-index of a shape. */
function* indices(shape: readonly number[]): Generator<number[]> {
  const idx = shape.map(() => 0);
  const total = shape.reduce((a, b) => a * b, 1);
  for (let n = 0; n < total; n++) {
    yield [...idx];
    for (let a = shape.length - 1; a >= 0; a--) {
      if (++idx[a] < shape[a]) break;
      idx[a] = 0;
    }
  }
}

for (const version of [1, 2] as const) {
  Deno.test(`big_vision → canonical mapping by value (PG${version}, f32)`, async () => {
    const dir = await Deno.makeTempDir();
    const cfg = tinyConfig(version);
    const prefix = version === 1 ? "params/" : "";
    const path = join(dir, "bv.npz");
    await writeSyntheticBigVision(path, cfg, { dtype: "F32", prefix, seed: 7 });
    const ck = await openCheckpoint(path);
    const npz: TensorStore = await openNpz(path);
    try {
      assert.equal(ck.format, "big_vision");
      // Names and shapes: exactly the tensors the config demands.
      const expected = expectedTensorList(cfg);
      assert.deepEqual([...ck.tensors.keys()].sort(), expected.map((t) => t.name).sort());
      for (const t of expected) assert.deepEqual(ck.tensors.get(t.name)!.shape, t.shape, t.name);

      const raw = async (key: string) => {
        const ref = npz.get(prefix + key);
        return { v: await values(ref, key), s: ref!.shape };
      };
      let compared = 0;
      /** canonical[idx] must equal raw[src(idx)] for every idx. */
      const check = async (
        name: string,
        key: string,
        src: (i: number[]) => number[],
      ) => {
        const ref = ck.tensors.get(name);
        const c = await values(ref, name);
        const r = await raw(key);
        for (const idx of indices(ref!.shape)) {
          const want = r.v[at(r.s, ...src(idx))];
          const got = c[at(ref!.shape, ...idx)];
          if (got !== want) assert.fail(`${name}[${idx}] = ${got}, ${key} gives ${want}`);
          compared++;
        }
      };

      const v = cfg.vision;
      const hd = v.hiddenSize / v.numHeads;
      const vp = "vision_tower.vision_model.";
      await check(
        `${vp}embeddings.patch_embedding.weight`,
        "img/embedding/kernel",
        ([o, c, y, x]) => [
          y,
          x,
          c,
          o,
        ],
      );
      await check(`${vp}embeddings.patch_embedding.bias`, "img/embedding/bias", (i) => i);
      await check(`${vp}embeddings.position_embedding.weight`, "img/pos_embedding", ([t, c]) => [
        0,
        t,
        c,
      ]);
      const enc = "img/Transformer/encoderblock/";
      const mha = `${enc}MultiHeadDotProductAttention_0/`;
      for (let l = 0; l < v.numLayers; l++) {
        const p = `${vp}encoder.layers.${l}.`;
        for (const [hf, bv] of [["q_proj", "query"], ["k_proj", "key"], ["v_proj", "value"]]) {
          // HF weight[out = n*hd + h, in = c] = kernel[l, c, n, h]
          await check(`${p}self_attn.${hf}.weight`, `${mha}${bv}/kernel`, ([o, c]) => [
            l,
            c,
            Math.floor(o / hd),
            o % hd,
          ]);
          await check(`${p}self_attn.${hf}.bias`, `${mha}${bv}/bias`, ([o]) => [
            l,
            Math.floor(o / hd),
            o % hd,
          ]);
        }
        // out_proj.weight[c, n*hd + h] = out/kernel[l, n, h, c]
        await check(`${p}self_attn.out_proj.weight`, `${mha}out/kernel`, ([c, i]) => [
          l,
          Math.floor(i / hd),
          i % hd,
          c,
        ]);
        await check(`${p}self_attn.out_proj.bias`, `${mha}out/bias`, ([c]) => [l, c]);
        await check(`${p}mlp.fc1.weight`, `${enc}MlpBlock_0/Dense_0/kernel`, ([o, c]) => [l, c, o]);
        await check(`${p}mlp.fc1.bias`, `${enc}MlpBlock_0/Dense_0/bias`, ([o]) => [l, o]);
        await check(`${p}mlp.fc2.weight`, `${enc}MlpBlock_0/Dense_1/kernel`, ([o, c]) => [l, c, o]);
        await check(`${p}mlp.fc2.bias`, `${enc}MlpBlock_0/Dense_1/bias`, ([o]) => [l, o]);
        await check(`${p}layer_norm1.weight`, `${enc}LayerNorm_0/scale`, ([c]) => [l, c]);
        await check(`${p}layer_norm1.bias`, `${enc}LayerNorm_0/bias`, ([c]) => [l, c]);
        await check(`${p}layer_norm2.weight`, `${enc}LayerNorm_1/scale`, ([c]) => [l, c]);
        await check(`${p}layer_norm2.bias`, `${enc}LayerNorm_1/bias`, ([c]) => [l, c]);
      }
      await check(`${vp}post_layernorm.weight`, "img/Transformer/encoder_norm/scale", (i) => i);
      await check(`${vp}post_layernorm.bias`, "img/Transformer/encoder_norm/bias", (i) => i);
      await check("multi_modal_projector.linear.weight", "img/head/kernel", ([o, c]) => [c, o]);
      await check("multi_modal_projector.linear.bias", "img/head/bias", (i) => i);

      const t = cfg.text;
      const H = t.headDim;
      const lp = "language_model.model.";
      await check(`${lp}embed_tokens.weight`, "llm/embedder/input_embedding", (i) => i);
      await check(`${lp}norm.weight`, "llm/final_norm/scale", (i) => i);
      for (let l = 0; l < t.numLayers; l++) {
        const p = `${lp}layers.${l}.`;
        // q_proj[n*H + h, d] = q_einsum[l, n, d, h]
        await check(`${p}self_attn.q_proj.weight`, "llm/layers/attn/q_einsum/w", ([o, d]) => [
          l,
          Math.floor(o / H),
          d,
          o % H,
        ]);
        // k/v_proj[k*H + h, d] = kv_einsum[l, 0|1, k, d, h]
        for (const [j, proj] of [[0, "k_proj"], [1, "v_proj"]] as const) {
          await check(`${p}self_attn.${proj}.weight`, "llm/layers/attn/kv_einsum/w", ([o, d]) => [
            l,
            j,
            Math.floor(o / H),
            d,
            o % H,
          ]);
        }
        // o_proj[d, n*H + h] = attn_vec_einsum[l, n, h, d]
        await check(
          `${p}self_attn.o_proj.weight`,
          "llm/layers/attn/attn_vec_einsum/w",
          ([d, i]) => [
            l,
            Math.floor(i / H),
            i % H,
            d,
          ],
        );
        await check(`${p}mlp.gate_proj.weight`, "llm/layers/mlp/gating_einsum", ([f, d]) => [
          l,
          0,
          d,
          f,
        ]);
        await check(
          `${p}mlp.up_proj.weight`,
          "llm/layers/mlp/gating_einsum",
          ([f, d]) => [l, 1, d, f],
        );
        await check(`${p}mlp.down_proj.weight`, "llm/layers/mlp/linear", ([d, f]) => [l, f, d]);
        await check(`${p}input_layernorm.weight`, "llm/layers/pre_attention_norm/scale", ([d]) => [
          l,
          d,
        ]);
        if (version === 1) {
          await check(
            `${p}post_attention_layernorm.weight`,
            "llm/layers/pre_ffw_norm/scale",
            ([d]) => [
              l,
              d,
            ],
          );
        } else {
          const norms = [
            ["pre_feedforward_layernorm", "pre_ffw_norm"],
            ["post_attention_layernorm", "post_attention_norm"],
            ["post_feedforward_layernorm", "post_ffw_norm"],
          ];
          for (const [hf, bv] of norms) {
            await check(`${p}${hf}.weight`, `llm/layers/${bv}/scale`, ([d]) => [l, d]);
          }
        }
      }
      const total = expected.reduce((s, e) => s + e.shape.reduce((a, b) => a * b, 1), 0);
      assert.equal(compared, total, "every canonical element compared once");
    } finally {
      npz.close();
      ck.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
