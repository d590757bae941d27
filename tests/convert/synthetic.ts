/**
 * Tiny random PaliGemma 1 / 2 checkpoints held in memory, with HF legacy names and layouts,
 * for converter tests before (and besides) the Python-made fixtures.
 * @module
 */

import type { TensorRef } from "../../lib/checkpoint/tensor.ts";
import type { ConvertSource } from "../../lib/convert/source.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";

/** A tiny config of PaliGemma `version` (Gemma 2 extras on for 2). */
export function tinyConfig(version: 1 | 2): PaliGemmaConfig {
  const g2 = version === 2;
  return {
    version,
    vision: {
      imageSize: 28,
      patchSize: 14,
      hiddenSize: 32,
      intermediateSize: 64,
      numLayers: 2,
      numHeads: 2,
      layerNormEps: 1e-6,
    },
    text: {
      variant: g2 ? "gemma2" : "gemma",
      hiddenSize: 64,
      intermediateSize: 128,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: g2 ? 2 : 1,
      headDim: 16,
      vocabSize: 300,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      queryPreAttnScalar: g2 ? 24 : 16,
      attnLogitSoftcap: g2 ? 50 : null,
      finalLogitSoftcap: g2 ? 30 : null,
      slidingWindow: g2 ? 4096 : null,
    },
    projectionDim: 64,
    imageTokenIndex: 299,
    numImageTokens: 4,
    padTokenId: 0,
    bosTokenId: 2,
    eosTokenId: 1,
  };
}

/** A seeded generator of normal samples (mulberry32 + Box–Muller). */
export function normalRng(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** All tensor shapes of a config, by canonical HF name. */
export function tensorShapes(cfg: PaliGemmaConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const v = cfg.vision;
  const V = "vision_tower.vision_model.";
  const n = (v.imageSize / v.patchSize) ** 2;
  m.set(`${V}embeddings.patch_embedding.weight`, [v.hiddenSize, 3, v.patchSize, v.patchSize]);
  m.set(`${V}embeddings.patch_embedding.bias`, [v.hiddenSize]);
  m.set(`${V}embeddings.position_embedding.weight`, [n, v.hiddenSize]);
  for (let i = 0; i < v.numLayers; i++) {
    const p = `${V}encoder.layers.${i}.`;
    for (const ln of ["layer_norm1", "layer_norm2"]) {
      m.set(`${p}${ln}.weight`, [v.hiddenSize]);
      m.set(`${p}${ln}.bias`, [v.hiddenSize]);
    }
    for (const k of ["q_proj", "k_proj", "v_proj", "out_proj"]) {
      m.set(`${p}self_attn.${k}.weight`, [v.hiddenSize, v.hiddenSize]);
      m.set(`${p}self_attn.${k}.bias`, [v.hiddenSize]);
    }
    m.set(`${p}mlp.fc1.weight`, [v.intermediateSize, v.hiddenSize]);
    m.set(`${p}mlp.fc1.bias`, [v.intermediateSize]);
    m.set(`${p}mlp.fc2.weight`, [v.hiddenSize, v.intermediateSize]);
    m.set(`${p}mlp.fc2.bias`, [v.hiddenSize]);
  }
  m.set(`${V}post_layernorm.weight`, [v.hiddenSize]);
  m.set(`${V}post_layernorm.bias`, [v.hiddenSize]);
  m.set("multi_modal_projector.linear.weight", [cfg.projectionDim, v.hiddenSize]);
  m.set("multi_modal_projector.linear.bias", [cfg.projectionDim]);
  const t = cfg.text;
  const L = "language_model.model.";
  m.set(`${L}embed_tokens.weight`, [t.vocabSize, t.hiddenSize]);
  const norms = t.variant === "gemma2"
    ? [
      "input_layernorm",
      "post_attention_layernorm",
      "pre_feedforward_layernorm",
      "post_feedforward_layernorm",
    ]
    : ["input_layernorm", "post_attention_layernorm"];
  for (let i = 0; i < t.numLayers; i++) {
    const p = `${L}layers.${i}.`;
    for (const k of norms) m.set(`${p}${k}.weight`, [t.hiddenSize]);
    m.set(`${p}self_attn.q_proj.weight`, [t.numHeads * t.headDim, t.hiddenSize]);
    m.set(`${p}self_attn.k_proj.weight`, [t.numKvHeads * t.headDim, t.hiddenSize]);
    m.set(`${p}self_attn.v_proj.weight`, [t.numKvHeads * t.headDim, t.hiddenSize]);
    m.set(`${p}self_attn.o_proj.weight`, [t.hiddenSize, t.numHeads * t.headDim]);
    m.set(`${p}mlp.gate_proj.weight`, [t.intermediateSize, t.hiddenSize]);
    m.set(`${p}mlp.up_proj.weight`, [t.intermediateSize, t.hiddenSize]);
    m.set(`${p}mlp.down_proj.weight`, [t.hiddenSize, t.intermediateSize]);
  }
  m.set(`${L}norm.weight`, [t.hiddenSize]);
  return m;
}

/** Random weights: norms near 0 (Gemma) or 1 (LayerNorm), matrices ~ N(0, 1/fan_in). */
export function randomWeights(cfg: PaliGemmaConfig, seed: number): Map<string, Float32Array> {
  const rnd = normalRng(seed);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of tensorShapes(cfg)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(size);
    const isNorm = /norm/.test(name);
    const fanIn = shape.length > 1 ? size / shape[0] : 1;
    const std = name.endsWith("embed_tokens.weight")
      ? 1 / Math.sqrt(cfg.text.hiddenSize)
      : isNorm
      ? 0.1
      : name.endsWith(".bias")
      ? 0.02
      : name.includes("position_embedding")
      ? 0.1
      : 1 / Math.sqrt(fanIn);
    for (let i = 0; i < size; i++) a[i] = rnd() * std;
    if (isNorm && name.includes("vision") && name.endsWith(".weight")) {
      for (let i = 0; i < size; i++) a[i] += 1;
    }
    out.set(name, a);
  }
  return out;
}

/** An in-memory ConvertSource over float32 weights. */
export function memorySource(
  cfg: PaliGemmaConfig,
  weights: Map<string, Float32Array>,
): ConvertSource {
  const shapes = tensorShapes(cfg);
  const tensors = new Map<string, TensorRef>();
  for (const [name, data] of weights) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    tensors.set(name, {
      name,
      dtype: "F32",
      shape: shapes.get(name)!,
      byteLength: bytes.length,
      read: (offset = 0, length = bytes.length - offset) =>
        Promise.resolve(bytes.slice(offset, offset + length)),
    });
  }
  return { path: "<synthetic>", config: cfg, tensors };
}
