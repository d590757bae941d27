/**
 * The `decoder_model_merged` graph: Gemma (PaliGemma 1) or Gemma 2 (PaliGemma 2) with a KV cache.
 *
 * Inputs: `inputs_embeds` [B,S,D], `attention_mask` [B,P+S] (1 = real token), `position_ids` [B,S],
 * `num_logits_to_keep` (scalar; 0 = all), `past_key_values.{i}.{key,value}` [B,Kv,P,hd].
 * Outputs: `logits` [B,keep,V], `present.{i}.{key,value}` [B,Kv,P+S,hd].
 *
 * Attention is prefix-LM: the S tokens of one call attend to each other in both directions and to
 * the whole past, and keys whose mask is 0 never contribute. A prefill of image + prompt is thus
 * bidirectional and single-token decode steps are causal (HF transformers 4.x semantics). Gemma 2's
 * sliding window is not applied (see README: it only matters beyond 4096 tokens). Gemma 2's final
 * logit soft-cap is applied only when `finalSoftcap` is set: transformers 4.57's
 * PaliGemmaForConditionalGeneration does not apply it (big_vision and older HF versions do); the
 * cap is monotonic, so greedy tokens are the same either way.
 * @module
 */

import { InputError } from "../errors.ts";
import type { OnnxModelWriter } from "../onnx/builder.ts";
import { DataType } from "../onnx/proto.ts";
import { EMBED, embedChunkRows } from "./embed_graph.ts";
import { fromFloat32 } from "../checkpoint/dtype.ts";
import {
  f32Bytes,
  geluTanh,
  layerStorage,
  linear,
  matMulNBits,
  MS,
  rmsNorm,
  softcap,
  type WeightFormat,
} from "./layers.ts";
import { chooseInputScaling, scaleColumns, type ScaledMatrix } from "./input_scaling.ts";
import { type ConvertSource, type F32Tensor, readF32, readRowChunks } from "./source.ts";
import { isTied, type TextConfig } from "../model/config.ts";

const L = "language_model.model.";

/** Most negative float32, the additive mask value HF uses. */
const MASK_MIN = -3.4028234663852886e38;

/** Rows of the RoPE cos/sin tables (positions are 1-based, so this covers 8192 tokens). */
export const ROPE_POSITIONS = 8193;

/**
 * RoPE cos and sin tables [positions, headDim/2] computed as HF does in float32: inv_freq =
 * 1 / theta^(2i/hd), angle = position * inv_freq, each step rounded to float32.
 */
export function ropeTables(
  headDim: number,
  theta: number,
  positions: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  const f = Math.fround;
  for (let i = 0; i < half; i++) {
    const inv = f(1 / f(Math.pow(theta, f((2 * i) / headDim))));
    for (let p = 0; p < positions; p++) {
      const a = f(p * inv);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** Builds the decoder into `g`, reporting each finished layer through `progress`. */
export async function buildDecoderGraph(
  g: OnnxModelWriter,
  src: ConvertSource,
  precision: WeightFormat,
  progress: (done: number, total: number) => void = () => {},
  finalSoftcap = false,
): Promise<void> {
  const t: TextConfig = src.config.text;
  const d = t.hiddenSize;
  const hd = t.headDim;
  const nq = t.numHeads;
  const nkv = t.numKvHeads;
  if (nq % nkv !== 0) {
    throw new InputError(`${src.path}: ${nq} query heads do not divide into ${nkv} KV heads`);
  }
  const eps = t.rmsNormEps;
  const gemma2 = t.variant === "gemma2";
  const read = (name: string, shape: number[]) => readF32(src, name, shape);
  /** Input scales of a layer's gate and up (input_scaling.ts), or null when off or unquantised. */
  const mlpScaling = async (normName: string, pre: string, gate: F32Tensor, up: F32Tensor) => {
    const alphas = precision.quant?.mlpInputScale ?? [];
    const mats: ScaledMatrix[] = [];
    for (const [k, w] of [["gate_proj", gate], ["up_proj", up]] as const) {
      const storage = layerStorage(precision, "mlp", `${pre}mlp.${k}.weight`);
      if (typeof storage !== "string") mats.push({ w, scheme: storage });
    }
    if (alphas.length === 0 || mats.length === 0) return null;
    return chooseInputScaling((await read(normName, [d])).data, mats, alphas).scales;
  };

  const embeds = g.input("inputs_embeds", DataType.FLOAT, ["batch_size", "sequence_length", d]);
  const mask = g.input("attention_mask", DataType.INT64, ["batch_size", "total_sequence_length"]);
  const positions = g.input("position_ids", DataType.INT64, ["batch_size", "sequence_length"]);
  const keep = g.input("num_logits_to_keep", DataType.INT64, []);
  const past: string[][] = [];
  for (let i = 0; i < t.numLayers; i++) {
    past.push(
      ["key", "value"].map((kv) =>
        g.input(`past_key_values.${i}.${kv}`, DataType.FLOAT, [
          "batch_size",
          nkv,
          "past_sequence_length",
          hd,
        ])
      ),
    );
  }

  // Additive key mask [B,1,1,T]: 0 where attention_mask is 1, float32 min where it is 0.
  const maskF = g.op("Cast", [mask], { to: DataType.FLOAT });
  const maskBias = g.op("Mul", [
    g.op("Sub", [g.constF32([1], []), maskF]),
    g.constF32([MASK_MIN], []),
  ]);
  const bias = g.op("Unsqueeze", [maskBias, g.constI64([1, 2])]);

  const { cos, sin } = ropeTables(hd, t.ropeTheta, ROPE_POSITIONS);
  const cosCache = await g.weight(
    "rope.cos_cache",
    DataType.FLOAT,
    [ROPE_POSITIONS, hd / 2],
    f32Bytes(cos),
  );
  const sinCache = await g.weight(
    "rope.sin_cache",
    DataType.FLOAT,
    [ROPE_POSITIONS, hd / 2],
    f32Bytes(sin),
  );
  const rope = (x: string, heads: number) =>
    g.op("RotaryEmbedding", [x, positions, cosCache, sinCache], {
      interleaved: 0,
      num_heads: heads,
    }, MS);
  const qScale = g.constF32([1 / Math.sqrt(t.queryPreAttnScalar)], []);

  let h = g.op("Mul", [embeds, g.constF32([Math.fround(Math.sqrt(d))], [])]);
  const total = t.numLayers + 1;
  for (let i = 0; i < t.numLayers; i++) {
    const pre = `${L}layers.${i}.`;
    const norm = async (x: string, k: string, divisor?: Float32Array) =>
      rmsNorm(g, x, `${pre}${k}.weight`, await read(`${pre}${k}.weight`, [d]), eps, divisor);
    const weight = (k: string, outDim: number, inDim: number) =>
      read(`${pre}${k}.weight`, [outDim, inDim]);
    const linW = (x: string, k: string, w: F32Tensor) =>
      linear(g, x, `${pre}${k}.weight`, w, precision, k.startsWith("mlp.") ? "mlp" : "attention");
    const lin = async (x: string, k: string, outDim: number, inDim: number) =>
      linW(x, k, await weight(k, outDim, inDim));

    const x = await norm(h, "input_layernorm");
    const q = rope(await lin(x, "self_attn.q_proj", nq * hd, d), nq);
    const k = rope(await lin(x, "self_attn.k_proj", nkv * hd, d), nkv);
    const v = await lin(x, "self_attn.v_proj", nkv * hd, d);
    const heads = (y: string, n: number) =>
      g.op("Transpose", [g.op("Reshape", [y, g.constI64([0, 0, n, hd])])], { perm: [0, 2, 1, 3] });
    const presentK =
      g.node("Concat", [past[i][0], heads(k, nkv)], [`present.${i}.key`], { axis: 2 })[0];
    const presentV =
      g.node("Concat", [past[i][1], heads(v, nkv)], [`present.${i}.value`], { axis: 2 })[0];
    // Queries grouped by KV head: [B,Nq,S,hd] → [B,Kv,G·S,hd], so K and V are never repeated.
    const qg = g.op("Reshape", [g.op("Mul", [heads(q, nq), qScale]), g.constI64([0, nkv, -1, hd])]);
    let scores = g.op("MatMul", [qg, g.op("Transpose", [presentK], { perm: [0, 1, 3, 2] })]);
    if (t.attnLogitSoftcap !== null) scores = softcap(g, scores, t.attnLogitSoftcap);
    const probs = g.op("Softmax", [g.op("Add", [scores, bias])], { axis: -1 });
    const ctx = g.op("MatMul", [probs, presentV]);
    const merged = g.op("Reshape", [
      g.op("Transpose", [g.op("Reshape", [ctx, g.constI64([0, nq, -1, hd])])], {
        perm: [0, 2, 1, 3],
      }),
      g.constI64([0, 0, nq * hd]),
    ]);
    let attn = await lin(merged, "self_attn.o_proj", d, nq * hd);
    if (gemma2) attn = await norm(attn, "post_attention_layernorm");
    h = g.op("Add", [h, attn]);
    const mlpNorm = gemma2 ? "pre_feedforward_layernorm" : "post_attention_layernorm";
    let gateW = await weight("mlp.gate_proj", t.intermediateSize, d);
    let upW = await weight("mlp.up_proj", t.intermediateSize, d);
    const scaling = await mlpScaling(`${pre}${mlpNorm}.weight`, pre, gateW, upW);
    if (scaling) [gateW, upW] = [scaleColumns(gateW, scaling), scaleColumns(upW, scaling)];
    const y = await norm(h, mlpNorm, scaling ?? undefined);
    const gate = geluTanh(g, await linW(y, "mlp.gate_proj", gateW));
    const up = await linW(y, "mlp.up_proj", upW);
    let mlp = await lin(g.op("Mul", [gate, up]), "mlp.down_proj", d, t.intermediateSize);
    if (gemma2) mlp = await norm(mlp, "post_feedforward_layernorm");
    h = g.op("Add", [h, mlp]);
    progress(i + 1, total);
  }
  // Keep the last `num_logits_to_keep` positions (0 keeps all: the slice starts at -0 = 0).
  const start = g.op("Neg", [g.op("Unsqueeze", [keep, g.constI64([0])])]);
  const kept = g.op("Slice", [h, start, g.constI64([Number.MAX_SAFE_INTEGER]), g.constI64([1])]);
  const normed = await rmsNorm(g, kept, `${L}norm.weight`, await read(`${L}norm.weight`, [d]), eps);
  let logits = await lmHead(g, normed, src, precision);
  if (finalSoftcap && t.finalLogitSoftcap !== null) {
    logits = softcap(g, logits, t.finalLogitSoftcap);
  }
  g.output(logits, "logits", DataType.FLOAT, ["batch_size", "num_logits", t.vocabSize]);
  const kvDims = ["batch_size", nkv, "total_sequence_length", hd];
  for (let i = 0; i < t.numLayers; i++) {
    for (const kv of ["key", "value"]) {
      g.output(`present.${i}.${kv}`, `present.${i}.${kv}`, DataType.FLOAT, kvDims);
    }
  }
  progress(total, total);
}

/** Logits against the LM head [V,D] (the tied embedding table), streamed in row chunks. */
async function lmHead(
  g: OnnxModelWriter,
  x: string,
  src: ConvertSource,
  fmt: WeightFormat,
): Promise<string> {
  const { vocabSize: vocab, hiddenSize: d } = src.config.text;
  const name = isTied(src.config) ? EMBED : "language_model.lm_head.weight";
  const chunks = () => readRowChunks(src, name, [vocab, d], embedChunkRows(d));
  const q = fmt.quant;
  if (q) return matMulNBits(g, x, "lm_head", chunks(), vocab, d, q.table, q.accuracyLevel);
  const half = fmt.precision === "fp16";
  async function* bytes(): AsyncGenerator<Uint8Array> {
    for await (const c of chunks()) yield half ? fromFloat32(c, "F16") : f32Bytes(c);
  }
  let w = await g.weight(
    "lm_head.weight",
    half ? DataType.FLOAT16 : DataType.FLOAT,
    [vocab, d],
    bytes(),
  );
  if (half) w = g.op("Cast", [w], { to: DataType.FLOAT });
  // Gemm needs 2-D input: [B,K,D] → [B·K,D] → Gemm(transB) → [B,K,V].
  const shape = g.op("Shape", [x]);
  const lead = g.op("Slice", [shape, g.constI64([0]), g.constI64([2]), g.constI64([0])]);
  const flat = g.op("Reshape", [x, g.constI64([-1, d])]);
  const y = g.op("Gemm", [flat, w], { transB: 1 });
  return g.op("Reshape", [y, g.op("Concat", [lead, g.constI64([vocab])], { axis: 0 })]);
}
