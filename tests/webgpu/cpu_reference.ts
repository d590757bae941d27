/**
 * Plain float64 CPU versions of every WebGPU kernel, written from the definitions (not from the
 * kernels): the oracle of tests/webgpu. Inputs are the same float32 arrays the GPU gets.
 * @module
 */

/** A numeric array the references read. */
export type Num = ArrayLike<number>;

/** [B, T, H, D] element order: token-major ("bthd") or head-major ("bhtd"). */
export type Layout = "bthd" | "bhtd";

/** Flat index of (b, t, h, d) in `layout`. */
export function headIndex(
  layout: Layout,
  dims: { T: number; H: number; D: number },
  b: number,
  t: number,
  h: number,
  d: number,
): number {
  const { T, H, D } = dims;
  return layout === "bthd" ? ((b * T + t) * H + h) * D + d : ((b * H + h) * T + t) * D + d;
}

/** C[m,n] = Σ_k A[m,k] W[n,k] (+ bias[n]). */
export function matmulRef(a: Num, w: Num, bias: Num | null, m: number, n: number, k: number) {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias ? bias[j] : 0;
      for (let q = 0; q < k; q++) s += a[i * k + q] * w[j * k + q];
      c[i * n + j] = s;
    }
  }
  return c;
}

/** Gemma RMSNorm: x / sqrt(mean(x²) + eps) * (1 + w), per row. */
export function rmsnormRef(x: Num, w: Num, rows: number, dim: number, eps: number) {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * inv * (1 + w[i]);
  }
  return y;
}

/** LayerNorm with weight and bias (biased variance), per row. */
export function layernormRef(x: Num, w: Num, b: Num, rows: number, dim: number, eps: number) {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[r * dim + i];
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (x[r * dim + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

/** gelu with the tanh approximation. */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

/** Elementwise gelu_tanh. */
export function geluRef(x: Num) {
  return Float64Array.from(x, geluTanh);
}

/** gelu_tanh(gate) * up, elementwise. */
export function geluMulRef(gate: Num, up: Num) {
  return Float64Array.from(gate, (g, i) => geluTanh(g) * up[i]);
}

/** Rotate-half RoPE of every (b, t, h) vector at positions[b*T + t]. */
export function ropeRef(
  x: Num,
  positions: Num,
  dims: { B: number; T: number; H: number; D: number },
  layout: Layout,
  theta = 10000,
) {
  const { B, T, H, D } = dims;
  const y = Float64Array.from(x);
  const half = D / 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pos = positions[b * T + t];
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < half; i++) {
          const a = pos / theta ** ((2 * i) / D);
          const i1 = headIndex(layout, dims, b, t, h, i);
          const i2 = headIndex(layout, dims, b, t, h, i + half);
          y[i1] = x[i1] * Math.cos(a) - x[i2] * Math.sin(a);
          y[i2] = x[i2] * Math.cos(a) + x[i1] * Math.sin(a);
        }
      }
    }
  }
  return y;
}

/** Shapes and options of `attentionRef`; caches are [B, Hkv, capacity, D]. */
export interface AttentionRefArgs {
  /** Queries [B, T, Hq, D] in `layout`. */
  q: Num;
  /** Key cache. */
  k: Num;
  /** Value cache. */
  v: Num;
  /** Additive mask [B, maskStride] or null. */
  mask: Num | null;
  /** Mask row stride. */
  maskStride: number;
  /** Batch. */
  B: number;
  /** Query heads. */
  Hq: number;
  /** KV heads. */
  Hkv: number;
  /** New tokens. */
  T: number;
  /** Head size. */
  D: number;
  /** Past positions. */
  P: number;
  /** Cache capacity. */
  capacity: number;
  /** Score scale. */
  scale: number;
  /** Soft-cap (0 = none). */
  softcap: number;
  /** Causal among new tokens. */
  causal: boolean;
  /** Sliding window (0 = none). */
  window: number;
  /** Layout of q and the output. */
  layout: Layout;
}

/** Reference attention: softmax over allowed keys of cap(q·k·scale) + mask, times v. */
export function attentionRef(a: AttentionRefArgs) {
  const { B, Hq, Hkv, T, D, P, capacity } = a;
  const out = new Float64Array(B * T * Hq * D);
  const qd = { T, H: Hq, D };
  const group = Hq / Hkv;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / group);
      for (let t = 0; t < T; t++) {
        const qpos = P + t;
        const keys: number[] = [];
        const scores: number[] = [];
        for (let j = 0; j < P + T; j++) {
          if (a.causal && j > qpos) continue;
          if (a.window > 0 && qpos - j >= a.window) continue;
          let s = 0;
          const kb = ((b * Hkv + kvh) * capacity + j) * D;
          for (let d = 0; d < D; d++) s += a.q[headIndex(a.layout, qd, b, t, h, d)] * a.k[kb + d];
          s *= a.scale;
          if (a.softcap > 0) s = Math.tanh(s / a.softcap) * a.softcap;
          if (a.mask) s += a.mask[b * a.maskStride + j];
          if (s === -Infinity) continue;
          keys.push(j);
          scores.push(s);
        }
        const mx = Math.max(...scores);
        const p = scores.map((s) => Math.exp(s - mx));
        const sum = p.reduce((x, y) => x + y, 0);
        for (let d = 0; d < D; d++) {
          let o = 0;
          keys.forEach((j, i) => {
            o += p[i] * a.v[((b * Hkv + kvh) * capacity + j) * D + d];
          });
          out[headIndex(a.layout, qd, b, t, h, d)] = keys.length ? o / sum : 0;
        }
      }
    }
  }
  return out;
}

/** A[i] + B[i % nb]. */
export function addRef(a: Num, b: Num) {
  return Float64Array.from(a, (v, i) => v + b[i % b.length]);
}

/** Rows of a [V, D] table, times `scale`; out-of-range ids give zeros. */
export function embeddingRef(table: Num, ids: Num, dim: number, vocab: number, scale: number) {
  const y = new Float64Array(ids.length * dim);
  for (let r = 0; r < ids.length; r++) {
    if (ids[r] >= vocab) continue;
    for (let d = 0; d < dim; d++) y[r * dim + d] = table[ids[r] * dim + d] * scale;
  }
  return y;
}

/** First index of the maximum of each row (NaNs ignored; all-NaN row gives 0). */
export function argmaxRef(x: Num, rows: number, n: number) {
  const out = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = -Infinity;
    let idx = -1;
    for (let i = 0; i < n; i++) {
      const v = x[r * n + i];
      if (!Number.isNaN(v) && (idx < 0 || v > best)) {
        best = v;
        idx = i;
      }
    }
    out[r] = Math.max(idx, 0);
  }
  return out;
}

/** Shapes of the NHWC convolution references. */
export interface ConvDims {
  /** Images. */
  N: number;
  /** Input height. */
  H: number;
  /** Input width. */
  W: number;
  /** Input channels. */
  I: number;
  /** Output channels. */
  O: number;
  /** Kernel size. */
  k: number;
  /** Padding. */
  pad: number;
}

/** Stride-1 Conv2d, NHWC activations, PyTorch [O, I, k, k] weights. */
export function conv2dRef(x: Num, w: Num, bias: Num, c: ConvDims) {
  const { N, H, W, I, O, k, pad } = c;
  const OH = H + 2 * pad - k + 1;
  const OW = W + 2 * pad - k + 1;
  const y = new Float64Array(N * OH * OW * O);
  for (let n = 0; n < N; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        for (let o = 0; o < O; o++) {
          let s = bias[o];
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              const iy = oy + ky - pad;
              const ix = ox + kx - pad;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              for (let i = 0; i < I; i++) {
                s += x[((n * H + iy) * W + ix) * I + i] * w[((o * I + i) * k + ky) * k + kx];
              }
            }
          }
          y[((n * OH + oy) * OW + ox) * O + o] = s;
        }
      }
    }
  }
  return { y, OH, OW };
}

/** ConvTranspose2d by scattering each input pixel (PyTorch [I, O, k, k] weights, NHWC). */
export function convTransposeRef(x: Num, w: Num, bias: Num, c: ConvDims & { stride: number }) {
  const { N, H, W, I, O, k, pad, stride } = c;
  const OH = (H - 1) * stride - 2 * pad + k;
  const OW = (W - 1) * stride - 2 * pad + k;
  const y = new Float64Array(N * OH * OW * O);
  for (let n = 0; n < N; n++) {
    for (let j = 0; j < OH * OW; j++) {
      for (let o = 0; o < O; o++) y[(n * OH * OW + j) * O + o] = bias[o];
    }
    for (let iy = 0; iy < H; iy++) {
      for (let ix = 0; ix < W; ix++) {
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const oy = iy * stride - pad + ky;
            const ox = ix * stride - pad + kx;
            if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
            for (let i = 0; i < I; i++) {
              const v = x[((n * H + iy) * W + ix) * I + i];
              for (let o = 0; o < O; o++) {
                y[((n * OH + oy) * OW + ox) * O + o] += v * w[((i * O + o) * k + ky) * k + kx];
              }
            }
          }
        }
      }
    }
  }
  return { y, OH, OW };
}

/** max(x, 0) elementwise. */
export function reluRef(x: Num) {
  return Float64Array.from(x, (v) => Math.max(v, 0));
}
