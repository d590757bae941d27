/**
 * The `vision_encoder` graph: SigLIP So400m/14 and the projector, `pixel_values` [B,3,S,S] →
 * `image_features` [B, numImageTokens, projectionDim], divided by sqrt(text hidden size) as
 * transformers.js expects (its decoder multiplies every embedding by that root again).
 * @module
 */

import type { OnnxModelWriter } from "../onnx/builder.ts";
import { DataType } from "../onnx/proto.ts";
import { f32Weight, geluTanh, layerNorm, linear, MS, type WeightFormat } from "./layers.ts";
import { type ConvertSource, readF32 } from "./source.ts";

const V = "vision_tower.vision_model.";

/** Builds the vision encoder into `g`, reporting each finished layer through `progress`. */
export async function buildVisionGraph(
  g: OnnxModelWriter,
  src: ConvertSource,
  precision: WeightFormat,
  progress: (done: number, total: number) => void = () => {},
): Promise<void> {
  const cfg = src.config;
  const v = cfg.vision;
  const d = v.hiddenSize;
  const p = v.patchSize;
  const grid = Math.floor(v.imageSize / p);
  const n = grid * grid;
  const eps = v.layerNormEps;
  const read = (name: string, shape: number[]) => readF32(src, name, shape);

  const px = g.input("pixel_values", DataType.FLOAT, ["batch_size", 3, v.imageSize, v.imageSize]);
  const convW = await f32Weight(
    g,
    `${V}embeddings.patch_embedding.weight`,
    await read(`${V}embeddings.patch_embedding.weight`, [d, 3, p, p]),
  );
  const convB = await f32Weight(
    g,
    `${V}embeddings.patch_embedding.bias`,
    await read(`${V}embeddings.patch_embedding.bias`, [d]),
  );
  const conv = g.op("Conv", [px, convW, convB], { kernel_shape: [p, p], strides: [p, p] });
  const flat = g.op("Reshape", [conv, g.constI64([0, d, -1])]);
  const tokens = g.op("Transpose", [flat], { perm: [0, 2, 1] });
  const pos = await f32Weight(
    g,
    `${V}embeddings.position_embedding.weight`,
    await read(`${V}embeddings.position_embedding.weight`, [n, d]),
  );
  let x = g.op("Add", [tokens, pos]);

  const total = v.numLayers + 1;
  for (let i = 0; i < v.numLayers; i++) {
    const pre = `${V}encoder.layers.${i}.`;
    const ln = (k: string) =>
      Promise.all([read(`${pre}${k}.weight`, [d]), read(`${pre}${k}.bias`, [d])]);
    const lin = async (k: string, h: string, outDim: number, inDim: number) =>
      linear(
        g,
        h,
        `${pre}${k}.weight`,
        await read(`${pre}${k}.weight`, [outDim, inDim]),
        precision,
        "vision",
        await read(`${pre}${k}.bias`, [outDim]),
      );
    const [w1, b1] = await ln("layer_norm1");
    const h = await layerNorm(g, x, `${pre}layer_norm1`, w1, b1, eps);
    const q = await lin("self_attn.q_proj", h, d, d);
    const k = await lin("self_attn.k_proj", h, d, d);
    const val = await lin("self_attn.v_proj", h, d, d);
    const att = g.op("MultiHeadAttention", [q, k, val], { num_heads: v.numHeads }, MS);
    x = g.op("Add", [x, await lin("self_attn.out_proj", att, d, d)]);
    const [w2, b2] = await ln("layer_norm2");
    const h2 = await layerNorm(g, x, `${pre}layer_norm2`, w2, b2, eps);
    const f1 = geluTanh(g, await lin("mlp.fc1", h2, v.intermediateSize, d));
    x = g.op("Add", [x, await lin("mlp.fc2", f1, d, v.intermediateSize)]);
    progress(i + 1, total);
  }
  const post = await layerNorm(
    g,
    x,
    `${V}post_layernorm`,
    await read(`${V}post_layernorm.weight`, [d]),
    await read(`${V}post_layernorm.bias`, [d]),
    eps,
  );
  const proj = await linear(
    g,
    post,
    "multi_modal_projector.linear.weight",
    await read("multi_modal_projector.linear.weight", [cfg.projectionDim, d]),
    precision,
    "vision",
    await read("multi_modal_projector.linear.bias", [cfg.projectionDim]),
  );
  const scaled = g.op("Div", [proj, g.constF32([Math.sqrt(cfg.text.hiddenSize)], [])]);
  g.output(scaled, "image_features", DataType.FLOAT, ["batch_size", n, cfg.projectionDim]);
  progress(total, total);
}
