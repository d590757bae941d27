/**
 * big_vision `.npz` checkpoints: the member layout a config implies, the config a checkpoint's
 * shapes imply, and the canonical (HF legacy) tensors derived from the stacked members
 * (model-reference section 1).
 * @module
 */

import { InputError } from "../errors.ts";
import { imageTokensFor, type PaliGemmaConfig } from "../model/config.ts";
import { PROJECTOR_PREFIX, TEXT_PREFIX, VISION_PREFIX } from "../model/names.ts";
import { deriveTensor } from "./transform.ts";
import type { TensorRef, TensorStore } from "./tensor.ts";

/** One canonical tensor cut from a big_vision member. */
export interface BigVisionPiece {
  /** Canonical name of the tensor. */
  readonly canonical: string;
  /** Leading indices into the member (e.g. [layer] or [layer, 0]); [] for the whole member. */
  readonly index: readonly number[];
  /** Axis permutation of the selected block (numpy `transpose`), identity when absent. */
  readonly perm?: readonly number[];
  /** Canonical shape (a reshape of the permuted block). */
  readonly shape: readonly number[];
}

/** A big_vision npz member: its key (without `params/`), shape and the canonical tensors in it. */
export interface BigVisionMember {
  /** Member key without `params/` and `.npy`, e.g. `llm/layers/attn/q_einsum/w`. */
  readonly key: string;
  /** Member shape; stacked (scanned) members lead with the layer count. */
  readonly shape: readonly number[];
  /** Layers stacked along axis 0, or 0 when the member is not stacked. */
  readonly layers: number;
  /** Canonical tensors, ordered by their index; together they cover the whole member. */
  readonly pieces: readonly BigVisionPiece[];
}

const ENC = "img/Transformer/encoderblock/";
const MHA = `${ENC}MultiHeadDotProductAttention_0/`;

/** The members a big_vision checkpoint of `config` holds and how each maps to canonical names. */
export function bigVisionLayout(config: PaliGemmaConfig): BigVisionMember[] {
  const { vision: v, text: t } = config;
  const out: BigVisionMember[] = [];
  const whole = (
    key: string,
    shape: number[],
    canonical: string,
    cshape = shape,
    perm?: number[],
  ) =>
    out.push({
      key,
      shape,
      layers: 0,
      pieces: [{ canonical, index: [], shape: cshape, ...(perm ? { perm } : {}) }],
    });
  /** A member stacked over `layers`; `split` sub-tensors along axis 1 when given. */
  const stacked = (
    key: string,
    layers: number,
    block: number[],
    canonical: (i: number, j: number) => string,
    shape: number[],
    perm?: number[],
    split = 0,
  ) => {
    const pieces: BigVisionPiece[] = [];
    for (let i = 0; i < layers; i++) {
      for (let j = 0; j < Math.max(split, 1); j++) {
        pieces.push({
          canonical: canonical(i, j),
          index: split ? [i, j] : [i],
          shape,
          ...(perm ? { perm } : {}),
        });
      }
    }
    out.push({ key, shape: [layers, ...(split ? [split] : []), ...block], layers, pieces });
  };

  const W = v.hiddenSize;
  const heads = v.numHeads;
  const hd = W / heads;
  const P = v.patchSize;
  const vp = VISION_PREFIX;
  const vl = (i: number) => `${vp}encoder.layers.${i}.`;
  const Lv = v.numLayers;
  whole("img/embedding/kernel", [P, P, 3, W], `${vp}embeddings.patch_embedding.weight`, [
    W,
    3,
    P,
    P,
  ], [3, 2, 0, 1]);
  whole("img/embedding/bias", [W], `${vp}embeddings.patch_embedding.bias`);
  const n = imageTokensFor(v);
  whole("img/pos_embedding", [1, n, W], `${vp}embeddings.position_embedding.weight`, [n, W]);
  stacked(`${ENC}LayerNorm_0/scale`, Lv, [W], (i) => `${vl(i)}layer_norm1.weight`, [W]);
  stacked(`${ENC}LayerNorm_0/bias`, Lv, [W], (i) => `${vl(i)}layer_norm1.bias`, [W]);
  for (const [bv, hf] of [["query", "q_proj"], ["key", "k_proj"], ["value", "v_proj"]]) {
    stacked(`${MHA}${bv}/kernel`, Lv, [W, heads, hd], (i) => `${vl(i)}self_attn.${hf}.weight`, [
      W,
      W,
    ], [1, 2, 0]);
    stacked(`${MHA}${bv}/bias`, Lv, [heads, hd], (i) => `${vl(i)}self_attn.${hf}.bias`, [W]);
  }
  stacked(`${MHA}out/kernel`, Lv, [heads, hd, W], (i) => `${vl(i)}self_attn.out_proj.weight`, [
    W,
    W,
  ], [2, 0, 1]);
  stacked(`${MHA}out/bias`, Lv, [W], (i) => `${vl(i)}self_attn.out_proj.bias`, [W]);
  stacked(`${ENC}LayerNorm_1/scale`, Lv, [W], (i) => `${vl(i)}layer_norm2.weight`, [W]);
  stacked(`${ENC}LayerNorm_1/bias`, Lv, [W], (i) => `${vl(i)}layer_norm2.bias`, [W]);
  const I = v.intermediateSize;
  const mlp = `${ENC}MlpBlock_0/`;
  stacked(`${mlp}Dense_0/kernel`, Lv, [W, I], (i) => `${vl(i)}mlp.fc1.weight`, [I, W], [1, 0]);
  stacked(`${mlp}Dense_0/bias`, Lv, [I], (i) => `${vl(i)}mlp.fc1.bias`, [I]);
  stacked(`${mlp}Dense_1/kernel`, Lv, [I, W], (i) => `${vl(i)}mlp.fc2.weight`, [W, I], [1, 0]);
  stacked(`${mlp}Dense_1/bias`, Lv, [W], (i) => `${vl(i)}mlp.fc2.bias`, [W]);
  whole("img/Transformer/encoder_norm/scale", [W], `${vp}post_layernorm.weight`);
  whole("img/Transformer/encoder_norm/bias", [W], `${vp}post_layernorm.bias`);
  const Pd = config.projectionDim;
  whole("img/head/kernel", [W, Pd], `${PROJECTOR_PREFIX}linear.weight`, [Pd, W], [1, 0]);
  whole("img/head/bias", [Pd], `${PROJECTOR_PREFIX}linear.bias`);

  const D = t.hiddenSize;
  const N = t.numHeads;
  const K = t.numKvHeads;
  const H = t.headDim;
  const F = t.intermediateSize;
  const L = t.numLayers;
  const tl = (i: number) => `${TEXT_PREFIX}layers.${i}.`;
  whole("llm/embedder/input_embedding", [t.vocabSize, D], `${TEXT_PREFIX}embed_tokens.weight`);
  stacked("llm/layers/attn/q_einsum/w", L, [N, D, H], (i) => `${tl(i)}self_attn.q_proj.weight`, [
    N * H,
    D,
  ], [0, 2, 1]);
  // PG1 (K = 1) and PG2 scripts differ in form only: k[k*H+h, d] = kv[i, 0, k, d, h] for both.
  stacked(
    "llm/layers/attn/kv_einsum/w",
    L,
    [K, D, H],
    (i, j) => `${tl(i)}self_attn.${j === 0 ? "k" : "v"}_proj.weight`,
    [K * H, D],
    [0, 2, 1],
    2,
  );
  stacked(
    "llm/layers/attn/attn_vec_einsum/w",
    L,
    [N, H, D],
    (i) => `${tl(i)}self_attn.o_proj.weight`,
    [D, N * H],
    [2, 0, 1],
  );
  stacked(
    "llm/layers/mlp/gating_einsum",
    L,
    [D, F],
    (i, j) => `${tl(i)}mlp.${j === 0 ? "gate" : "up"}_proj.weight`,
    [F, D],
    [1, 0],
    2,
  );
  stacked("llm/layers/mlp/linear", L, [F, D], (i) => `${tl(i)}mlp.down_proj.weight`, [D, F], [
    1,
    0,
  ]);
  const norm = (bv: string, hf: string) =>
    stacked(`llm/layers/${bv}/scale`, L, [D], (i) => `${tl(i)}${hf}.weight`, [D]);
  norm("pre_attention_norm", "input_layernorm");
  if (t.variant === "gemma2") {
    norm("pre_ffw_norm", "pre_feedforward_layernorm");
    norm("post_attention_norm", "post_attention_layernorm");
    norm("post_ffw_norm", "post_feedforward_layernorm");
  } else {
    norm("pre_ffw_norm", "post_attention_layernorm");
  }
  whole("llm/final_norm/scale", [D], `${TEXT_PREFIX}norm.weight`);
  return out;
}

/** Member key without the `params/` prefix the real checkpoints carry. */
export function stripParams(key: string): string {
  return key.startsWith("params/") ? key.slice("params/".length) : key;
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Members of a store by key without `params/`. */
function membersOf(store: TensorStore): Map<string, TensorRef> {
  const m = new Map<string, TensorRef>();
  for (const name of store.names()) m.set(stripParams(name), store.get(name)!);
  return m;
}

/** Text-config fields a big_vision `.npz` cannot carry, so that inference takes them on trust. */
export type AssumedField =
  | "queryPreAttnScalar"
  | "attnLogitSoftcap"
  | "finalLogitSoftcap"
  | "slidingWindow";

/**
 * The fields of an inferred config that are published-model defaults rather than facts read
 * from the file: for PaliGemma 2 the query scale, both soft-caps and the sliding window (Gemma 1
 * has none of these, and its query scale is head_dim by definition). `convert --config` sets them.
 */
export function bigVisionAssumptions(config: PaliGemmaConfig): AssumedField[] {
  return config.text.variant === "gemma2"
    ? ["queryPreAttnScalar", "attnLogitSoftcap", "finalLogitSoftcap", "slidingWindow"]
    : [];
}

/**
 * The config a big_vision checkpoint's shapes imply. PaliGemma 2 is recognised by its post
 * norms; its query scale is head_dim, except the 28B width (4608 = 32 heads) where big_vision
 * uses hidden / heads = 144. Soft-caps 50/30 and HF's sliding window 4096 for PaliGemma 2.
 * These PaliGemma 2 values are assumptions (see {@link bigVisionAssumptions}).
 * The image token id is the first id past the embedding table (257152 for the real vocabulary,
 * as in HF checkpoints).
 */
export function inferBigVisionConfig(store: TensorStore): PaliGemmaConfig {
  const members = membersOf(store);
  const shapeOf = (key: string, rank: number): readonly number[] => {
    const ref = members.get(key);
    if (!ref) {
      throw new InputError(
        `${store.path}: missing tensor ${key} (not a PaliGemma big_vision npz?)`,
      );
    }
    if (ref.shape.length !== rank) {
      throw new InputError(
        `${store.path}: tensor ${ref.name} has shape ${fmt(ref.shape)}, expected ${rank} axes`,
      );
    }
    return ref.shape;
  };
  const [P, , , W] = shapeOf("img/embedding/kernel", 4);
  const [, n] = shapeOf("img/pos_embedding", 3);
  const [Lv] = shapeOf(`${ENC}LayerNorm_0/scale`, 2);
  const [, , I] = shapeOf(`${ENC}MlpBlock_0/Dense_0/kernel`, 3);
  const [, , heads] = shapeOf(`${MHA}query/kernel`, 4);
  const [, Pd] = shapeOf("img/head/kernel", 2);
  const [V, D] = shapeOf("llm/embedder/input_embedding", 2);
  const [L, N, , H] = shapeOf("llm/layers/attn/q_einsum/w", 4);
  const [, , K] = shapeOf("llm/layers/attn/kv_einsum/w", 5);
  const [, , , F] = shapeOf("llm/layers/mlp/gating_einsum", 4);
  const side = Math.round(Math.sqrt(n));
  if (side * side !== n) {
    throw new InputError(
      `${store.path}: img/pos_embedding holds ${n} positions, not a square grid`,
    );
  }
  const gemma2 = members.has("llm/layers/post_attention_norm/scale");
  const config: PaliGemmaConfig = {
    version: gemma2 ? 2 : 1,
    vision: {
      imageSize: side * P,
      patchSize: P,
      hiddenSize: W,
      intermediateSize: I,
      numLayers: Lv,
      numHeads: heads,
      layerNormEps: 1e-6,
    },
    text: {
      variant: gemma2 ? "gemma2" : "gemma",
      hiddenSize: D,
      intermediateSize: F,
      numLayers: L,
      numHeads: N,
      numKvHeads: K,
      headDim: H,
      vocabSize: V,
      rmsNormEps: 1e-6,
      ropeTheta: 10000,
      queryPreAttnScalar: gemma2 && D === 4608 && N === 32 ? D / N : H,
      attnLogitSoftcap: gemma2 ? 50 : null,
      finalLogitSoftcap: gemma2 ? 30 : null,
      slidingWindow: gemma2 ? 4096 : null,
      tieWordEmbeddings: true,
    },
    projectionDim: Pd,
    imageTokenIndex: V,
    numImageTokens: n,
    padTokenId: 0,
    bosTokenId: 2,
    eosTokenId: 1,
  };
  return config;
}

/**
 * The canonical tensors of a big_vision checkpoint, each derived lazily from its member (one
 * layer read at a time). Throws an InputError naming the file and member when a member is
 * missing or its shape does not fit `config`.
 */
export function bigVisionTensors(
  store: TensorStore,
  config: PaliGemmaConfig,
): Map<string, TensorRef> {
  const members = membersOf(store);
  const tensors = new Map<string, TensorRef>();
  for (const m of bigVisionLayout(config)) {
    const ref = members.get(m.key);
    if (!ref) throw new InputError(`${store.path}: missing tensor ${m.key}`);
    if (ref.shape.length !== m.shape.length || ref.shape.some((d, i) => d !== m.shape[i])) {
      throw new InputError(
        `${store.path}: tensor ${ref.name} shape ${fmt(ref.shape)} does not fit the config: ` +
          `expected ${fmt(m.shape)}`,
      );
    }
    for (const p of m.pieces) {
      tensors.set(p.canonical, deriveTensor(p.canonical, ref, p));
    }
  }
  return tensors;
}
