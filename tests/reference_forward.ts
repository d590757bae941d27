/**
 * A plain float64 PaliGemma forward pass, written for readability: the CPU reference that
 * converted graphs (and later GPU kernels) are checked against. Follows HF transformers 4.x:
 * SigLIP → projector; Gemma/Gemma 2 decoder with 1-based positions supplied by the caller,
 * prefix-LM attention over the whole call (bidirectional) with masked keys removed.
 * @module
 */

import type { PaliGemmaConfig } from "../lib/model/config.ts";

/** Weights by canonical HF name, as float32 arrays in HF layouts. */
export type RefWeights = (name: string) => Float32Array;

/** y[r] = W x[r] (+ b) for W [out, in] row-major, x [rows, in]. */
export function linear(
  x: Float64Array,
  rows: number,
  w: Float32Array,
  out: number,
  inp: number,
  b?: Float32Array,
): Float64Array {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) s += w[o * inp + i] * x[r * inp + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/** LayerNorm over rows of width d. */
export function layerNorm(
  x: Float64Array,
  d: number,
  w: Float32Array,
  b: Float32Array,
  eps: number,
) {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let mean = 0;
    for (let i = 0; i < d; i++) mean += x[r * d + i];
    mean /= d;
    let v = 0;
    for (let i = 0; i < d; i++) v += (x[r * d + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = (x[r * d + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

/** Gemma RMSNorm: x * rsqrt(mean(x²) + eps) * (1 + w). */
export function rmsNorm(x: Float64Array, d: number, w: Float32Array, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / d; r++) {
    let ms = 0;
    for (let i = 0; i < d; i++) ms += x[r * d + i] ** 2;
    const inv = 1 / Math.sqrt(ms / d + eps);
    for (let i = 0; i < d; i++) y[r * d + i] = x[r * d + i] * inv * (1 + w[i]);
  }
  return y;
}

/** GELU, tanh approximation. */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** Softmax of `row` in place, ignoring entries where `allowed` is false. */
function softmaxMasked(row: Float64Array, allowed: (j: number) => boolean): void {
  let max = -Infinity;
  for (let j = 0; j < row.length; j++) if (allowed(j)) max = Math.max(max, row[j]);
  let sum = 0;
  for (let j = 0; j < row.length; j++) {
    row[j] = allowed(j) ? Math.exp(row[j] - max) : 0;
    sum += row[j];
  }
  for (let j = 0; j < row.length; j++) row[j] /= sum;
}

/**
 * Multi-head attention. q [T, nq·hd], k and v [T, nkv·hd]; query head h reads KV head
 * floor(h / (nq / nkv)). Scores are scaled, optionally soft-capped, and keys with `allowed` false
 * are dropped.
 */
export function attention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  t: number,
  nq: number,
  nkv: number,
  hd: number,
  scale: number,
  cap: number | null,
  allowed: (i: number, j: number) => boolean,
): Float64Array {
  const out = new Float64Array(t * nq * hd);
  const row = new Float64Array(t);
  for (let h = 0; h < nq; h++) {
    const kh = Math.floor(h / (nq / nkv));
    for (let i = 0; i < t; i++) {
      for (let j = 0; j < t; j++) {
        let s = 0;
        for (let e = 0; e < hd; e++) s += q[(i * nq + h) * hd + e] * k[(j * nkv + kh) * hd + e];
        s *= scale;
        row[j] = cap === null ? s : cap * Math.tanh(s / cap);
      }
      softmaxMasked(row, (j) => allowed(i, j));
      for (let e = 0; e < hd; e++) {
        let s = 0;
        for (let j = 0; j < t; j++) s += row[j] * v[(j * nkv + kh) * hd + e];
        out[(i * nq + h) * hd + e] = s;
      }
    }
  }
  return out;
}

/** SigLIP + projector for one image [3, S, S]: features [numImageTokens, projectionDim], unscaled. */
export function refVision(cfg: PaliGemmaConfig, w: RefWeights, pixels: Float32Array): Float64Array {
  const v = cfg.vision;
  const d = v.hiddenSize;
  const p = v.patchSize;
  const s = v.imageSize;
  const grid = Math.floor(s / p);
  const n = grid * grid;
  const V = "vision_tower.vision_model.";
  const cw = w(`${V}embeddings.patch_embedding.weight`);
  const cb = w(`${V}embeddings.patch_embedding.bias`);
  const pos = w(`${V}embeddings.position_embedding.weight`);
  let x = new Float64Array(n * d);
  for (let gy = 0; gy < grid; gy++) {
    for (let gx = 0; gx < grid; gx++) {
      const t = gy * grid + gx;
      for (let c = 0; c < d; c++) {
        let acc = cb[c] + pos[t * d + c];
        for (let ci = 0; ci < 3; ci++) {
          for (let ky = 0; ky < p; ky++) {
            for (let kx = 0; kx < p; kx++) {
              acc += cw[((c * 3 + ci) * p + ky) * p + kx] *
                pixels[(ci * s + gy * p + ky) * s + gx * p + kx];
            }
          }
        }
        x[t * d + c] = acc;
      }
    }
  }
  const hd = d / v.numHeads;
  for (let i = 0; i < v.numLayers; i++) {
    const pre = `${V}encoder.layers.${i}.`;
    const lin = (y: Float64Array, k: string, o: number, inp: number) =>
      linear(y, n, w(`${pre}${k}.weight`), o, inp, w(`${pre}${k}.bias`));
    const h = layerNorm(
      x,
      d,
      w(`${pre}layer_norm1.weight`),
      w(`${pre}layer_norm1.bias`),
      v.layerNormEps,
    );
    const q = lin(h, "self_attn.q_proj", d, d);
    const k = lin(h, "self_attn.k_proj", d, d);
    const val = lin(h, "self_attn.v_proj", d, d);
    const a = attention(q, k, val, n, v.numHeads, v.numHeads, hd, hd ** -0.5, null, () => true);
    const o = lin(a, "self_attn.out_proj", d, d);
    x = x.map((e, j) => e + o[j]);
    const h2 = layerNorm(
      x,
      d,
      w(`${pre}layer_norm2.weight`),
      w(`${pre}layer_norm2.bias`),
      v.layerNormEps,
    );
    const f = lin(h2, "mlp.fc1", v.intermediateSize, d).map(geluTanh);
    const f2 = lin(f, "mlp.fc2", d, v.intermediateSize);
    x = x.map((e, j) => e + f2[j]);
  }
  const post = layerNorm(
    x,
    d,
    w(`${V}post_layernorm.weight`),
    w(`${V}post_layernorm.bias`),
    v.layerNormEps,
  );
  return linear(
    post,
    n,
    w("multi_modal_projector.linear.weight"),
    cfg.projectionDim,
    d,
    w("multi_modal_projector.linear.bias"),
  );
}

/**
 * The decoder over one sequence in one call. `embeds` [T, D] are the merged input embeddings
 * (token rows and image features already divided by sqrt(D)); they are multiplied by sqrt(D) here.
 * `keyMask[j]` = 0 removes key j. The first `prefixLen` tokens (default: all) attend to each other
 * bidirectionally; later ones are causal, as when they come one per decode step.
 * Returns logits [T, V]; Gemma 2's final soft-cap is applied only when `finalSoftcap` is set
 * (transformers 4.57's PaliGemma does not apply it).
 */
export function refDecoder(
  cfg: PaliGemmaConfig,
  w: RefWeights,
  embeds: Float64Array,
  positions: readonly number[],
  keyMask: readonly number[],
  prefixLen = positions.length,
  finalSoftcap = false,
): Float64Array {
  const t = cfg.text;
  const d = t.hiddenSize;
  const hd = t.headDim;
  const n = positions.length;
  const L = "language_model.model.";
  let x = embeds.map((e) => e * Math.sqrt(d));
  const rope = (y: Float64Array, heads: number) => {
    const half = hd / 2;
    for (let r = 0; r < n; r++) {
      for (let h = 0; h < heads; h++) {
        const o = (r * heads + h) * hd;
        for (let i = 0; i < half; i++) {
          const a = positions[r] * t.ropeTheta ** (-(2 * i) / hd);
          const x1 = y[o + i];
          const x2 = y[o + i + half];
          y[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
          y[o + i + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
        }
      }
    }
    return y;
  };
  const g2 = t.variant === "gemma2";
  for (let i = 0; i < t.numLayers; i++) {
    const pre = `${L}layers.${i}.`;
    const lin = (y: Float64Array, k: string, o: number, inp: number) =>
      linear(y, n, w(`${pre}${k}.weight`), o, inp);
    const norm = (y: Float64Array, k: string) =>
      rmsNorm(y, d, w(`${pre}${k}.weight`), t.rmsNormEps);
    const h = norm(x, "input_layernorm");
    const q = rope(lin(h, "self_attn.q_proj", t.numHeads * hd, d), t.numHeads);
    const k = rope(lin(h, "self_attn.k_proj", t.numKvHeads * hd, d), t.numKvHeads);
    const v = lin(h, "self_attn.v_proj", t.numKvHeads * hd, d);
    const a = attention(
      q,
      k,
      v,
      n,
      t.numHeads,
      t.numKvHeads,
      hd,
      t.queryPreAttnScalar ** -0.5,
      t.attnLogitSoftcap,
      (i, j) => keyMask[j] !== 0 && (j < prefixLen || j <= i),
    );
    let o = lin(a, "self_attn.o_proj", d, t.numHeads * hd);
    if (g2) o = norm(o, "post_attention_layernorm");
    x = x.map((e, j) => e + o[j]);
    const y = norm(x, g2 ? "pre_feedforward_layernorm" : "post_attention_layernorm");
    const gate = lin(y, "mlp.gate_proj", t.intermediateSize, d).map(geluTanh);
    const up = lin(y, "mlp.up_proj", t.intermediateSize, d);
    let m = lin(gate.map((e, j) => e * up[j]), "mlp.down_proj", d, t.intermediateSize);
    if (g2) m = norm(m, "post_feedforward_layernorm");
    x = x.map((e, j) => e + m[j]);
  }
  const final = rmsNorm(x, d, w(`${L}norm.weight`), t.rmsNormEps);
  const logits = linear(final, n, w(`${L}embed_tokens.weight`), t.vocabSize, d);
  const cap = finalSoftcap ? t.finalLogitSoftcap : null;
  return cap === null ? logits : logits.map((e) => cap * Math.tanh(e / cap));
}
