/**
 * PaliGemma's forward pass on WebGPU over the kernels in `kernels/`: SigLIP and the projector, the
 * Gemma / Gemma 2 decoder with a KV cache preallocated on the device, prefix-LM prefill over
 * left-padded batches and single-token decode steps. Weight products run on the tiled GEMM
 * (ops_gemm.ts) for the vision tower and prefill and on the GEMV (ops_gemv.ts) for decode rows,
 * with the decoder's RMSNorms fused into the products that read them, the residual adds fused
 * into their epilogues and gate/up fused with GELU-tanh·up; attention is FlashAttention
 * (ops_flash.ts) with each row's key range (left padding, prefix-LM) and split-KV for long decode.
 * Follows the converted ONNX decoder (lib/convert/decoder_graph.ts): image features divided by
 * sqrt(D) and every input embedding multiplied by float32 sqrt(D); no final logit soft-cap; no
 * sliding window.
 * @module
 */

import type { PaliGemmaConfig } from "../model/config.ts";
import type { Matrix, ModelWeights } from "./model_weights.ts";
import { add, attention, gelu, geluMul, kvAppend, layernorm, rmsnorm, rope, scale } from "./ops.ts";
import { embedRows } from "./ops_embed.ts";
import { flashAttention, flashScratchLengths, flashSplits, kvAppendF16 } from "./ops_flash.ts";
import { gemm, type GemmPrecision } from "./ops_gemm.ts";
import { type FusedNorm, gemv } from "./ops_gemv.ts";
import type { GpuRunner, GpuTensor } from "./runner.ts";
import { type GpuWeight, rowBytes } from "./weights.ts";

/** Activation rows up to which a weight product runs on the GEMV kernel (decode steps). */
export const GEMV_MAX_ROWS = 16;

/** Whether the GEMV kernel takes `w` (k a multiple of 4, rows of whole 16-byte units). */
export function gemvTakes(w: GpuWeight): boolean {
  if (w.k % 4 !== 0 || rowBytes(w) % 16 !== 0) return false;
  if (w.format === "f32" || w.format === "f16") return true;
  const bs = w.blockSize ?? 0;
  return bs >= 16 && (bs & (bs - 1)) === 0;
}

/** Fusions a weight product may apply (see `GpuPaliGemma.#mm`). */
interface MmFuse {
  /** Gemma RMSNorm of the input rows. */
  readonly norm?: FusedNorm;
  /** [m, n] residual added to the output. */
  readonly residual?: GpuTensor;
  /** Fused gate|up weight: out [m, n/2] = gelu_tanh(gate)·up (needs `scratch` for the GEMM). */
  readonly glu?: boolean;
  /** GELU-tanh after the bias. */
  readonly gelu?: boolean;
}

/**
 * Each row's visible keys for FlashAttention from a 0/1 mask [B, total]: (firstKey, total) when
 * the row's real keys are one run up to the end (left padding); null when any row's are not.
 */
export function keyRanges(mask: Int32Array, b: number, total: number): Uint32Array | null {
  const out = new Uint32Array(2 * b);
  for (let row = 0; row < b; row++) {
    const m = mask.subarray(row * total, (row + 1) * total);
    let first = 0;
    while (first < total && !m[first]) first++;
    for (let j = first; j < total; j++) if (!m[j]) return null;
    out[2 * row] = first;
    out[2 * row + 1] = total;
  }
  return out;
}

/** The device-side KV cache of one batch: per layer K and V [B, kvHeads, capacity, headDim]. */
export class GpuKvCache {
  /** Positions filled so far. */
  length = 0;
  /** Additive key mask [B, capacity] rows (0 or -Infinity), written per step when needed. */
  readonly mask: GpuTensor;
  /** u32 [B, 2] key ranges (firstKey, keys) of FlashAttention, written per step. */
  readonly rows: GpuTensor;
  /** Whether this step's mask is one run of real keys per row (FlashAttention's key ranges). */
  flash = true;

  constructor(
    readonly batchSize: number,
    readonly capacity: number,
    readonly keys: GpuTensor[],
    readonly values: GpuTensor[],
    mask: GpuTensor,
    rows: GpuTensor,
    /** Keys and values stored as IEEE halves, two per u32 (kvAppendF16), else f32. */
    readonly kvF16 = false,
  ) {
    this.mask = mask;
    this.rows = rows;
  }

  /** Frees the device buffers. */
  destroy(): void {
    for (const t of [...this.keys, ...this.values, this.mask, this.rows]) t.buffer.destroy();
  }
}

/** Scratch activations for `rows` token rows, reused while the row count stays the same. */
class Scratch {
  readonly h: GpuTensor;
  readonly x: GpuTensor;
  readonly q: GpuTensor;
  readonly k: GpuTensor;
  readonly v: GpuTensor;
  readonly attn: GpuTensor;
  readonly o: GpuTensor;
  readonly mlp: GpuTensor;
  readonly sum: GpuTensor;

  constructor(r: GpuRunner, readonly rows: number, cfg: PaliGemmaConfig) {
    const t = cfg.text;
    const d = t.hiddenSize;
    this.h = r.zeros(rows * d, "h");
    this.x = r.zeros(rows * d, "x");
    this.q = r.zeros(rows * t.numHeads * t.headDim, "q");
    this.k = r.zeros(rows * t.numKvHeads * t.headDim, "k");
    this.v = r.zeros(rows * t.numKvHeads * t.headDim, "v");
    this.attn = r.zeros(rows * t.numHeads * t.headDim, "attn");
    this.o = r.zeros(rows * d, "o");
    this.mlp = r.zeros(rows * t.intermediateSize, "mlp");
    this.sum = r.zeros(rows * d, "sum");
  }

  destroy(): void {
    for (const b of [this.h, this.x, this.q, this.k, this.v, this.attn, this.o]) b.buffer.destroy();
    for (const b of [this.mlp, this.sum]) b.buffer.destroy();
  }
}

/** The model on a device: weights, kernels and scratch buffers. */
export class GpuPaliGemma {
  readonly #scratch = new Map<number, Scratch>();
  readonly #sqrtD: number;
  /** Key ranges of a decode step's split-KV attention (0: `flashSplits` decides; tests, tuning). */
  splitKv = 0;
  /**
   * New caches hold keys and values as f16 (half the memory and the decode's KV reads; needs an
   * even head size and left-padded masks, FlashAttention's key ranges).
   */
  kvF16 = false;
  /** Growable scratch buffers by purpose (reallocated only to grow). */
  readonly #grow = new Map<string, GpuTensor>();

  /**
   * @param precision the GEMM's inner-loop arithmetic ("f16" needs the device's shader-f16).
   */
  constructor(
    readonly r: GpuRunner,
    readonly cfg: PaliGemmaConfig,
    readonly w: ModelWeights,
    readonly precision: GemmPrecision = "f32",
  ) {
    this.#sqrtD = Math.fround(Math.sqrt(cfg.text.hiddenSize));
  }

  /** A scratch buffer `key` of at least `length` elements (kept and reused). */
  #buffer(key: string, length: number): GpuTensor {
    const have = this.#grow.get(key);
    if (have && have.length >= length) return have;
    if (have) {
      // Recorded work may still use the old buffer: submit it first (a destroyed buffer's
      // submitted uses complete; unsubmitted ones would fail).
      this.r.flush();
      have.buffer.destroy();
    }
    const t = this.r.zeros(Math.max(length, 2 * (have?.length ?? 0)), key);
    this.#grow.set(key, t);
    return t;
  }

  /**
   * out[m, n] = a[m, k] · Wᵀ (+ bias) with the fusions `f`: GEMV for up to GEMV_MAX_ROWS rows
   * (decode), the tiled GEMM otherwise; a matrix in several row chunks writes each chunk's columns
   * through a scratch buffer (no residual or gate fusion there: those are applied after).
   */
  async #mm(a: GpuTensor, w: Matrix, out: GpuTensor, m: number, f: MmFuse = {}): Promise<void> {
    const r = this.r;
    if (w.chunks.length === 1) {
      await this.#product(a, w.chunks[0].w, w.chunks[0].bias, out, m, f);
      return;
    }
    // Chunks write their columns of the whole product; the epilogues then run as their own ops.
    const epilogue = f.residual !== undefined || f.glu === true || f.gelu === true;
    const full = epilogue ? this.#buffer("chunk_full", m * w.n) : out;
    let most = 0;
    for (const c of w.chunks) most = Math.max(most, c.rows);
    const tmp = this.#buffer("chunk_out", m * most);
    for (const c of w.chunks) {
      await this.#product(a, c.w, c.bias, tmp, m, { norm: f.norm });
      for (let i = 0; i < m; i++) r.copy(tmp, i * c.rows, full, i * w.n + c.row0, c.rows);
    }
    if (!epilogue) return;
    const cols = f.glu ? w.n / 2 : w.n;
    const act = f.residual ? this.#buffer("chunk_act", m * cols) : out;
    if (f.glu) await geluMul(r, { gate: full, out: act, rows: m, cols });
    else if (f.gelu) await gelu(r, { x: full, out: act, n: m * cols });
    else r.copy(full, 0, act, 0, m * cols);
    if (f.residual) await add(r, { a: act, b: f.residual, out, n: m * cols });
  }

  /** One weight's product (see `#mm`). */
  async #product(
    a: GpuTensor,
    w: GpuWeight,
    bias: GpuTensor | undefined,
    out: GpuTensor,
    m: number,
    f: MmFuse,
  ): Promise<void> {
    const r = this.r;
    if (m <= GEMV_MAX_ROWS && !f.gelu && gemvTakes(w)) {
      await gemv(r, { w, x: a, out, m, bias, residual: f.residual, norm: f.norm, glu: f.glu });
      return;
    }
    const precision = this.precision;
    if (f.glu) {
      const inter = w.n / 2;
      const gu = this.#buffer("glu_gate_up", m * w.n);
      await gemm(r, { a, w, out: gu, m, bias, norm: f.norm, precision });
      const target = f.residual ? this.#buffer("glu_out", m * inter) : out;
      await geluMul(r, { gate: gu, out: target, rows: m, cols: inter });
      if (f.residual) await add(r, { a: target, b: f.residual, out, n: m * inter });
      return;
    }
    await gemm(r, {
      a,
      w,
      out,
      m,
      bias,
      residual: f.residual,
      norm: f.norm,
      activation: f.gelu ? "gelu_tanh" : "none",
      precision,
    });
  }

  /**
   * out[i, :] = embed[ids[i], :] (zero rows for ids past the table), over the table's row chunks:
   * each chunk gathers the ids it holds (the others read as out of range, zero rows) and the
   * chunks' rows are summed (adding zeros is exact).
   */
  async #gather(ids: Int32Array, out: GpuTensor): Promise<void> {
    const r = this.r;
    const e = this.w.embed;
    const rows = ids.length;
    const d = e.k;
    // All the id buffers are written before any dispatch is recorded (a write submits first).
    const idBufs = e.chunks.map((c, ci) => {
      const local = e.chunks.length === 1 ? ids : Int32Array.from(
        ids,
        (id) => (id >= c.row0 && id < c.row0 + c.rows ? id - c.row0 : c.rows),
      );
      const idBuf = this.#buffer(`ids${ci}`, rows);
      r.write(idBuf, local);
      return idBuf;
    });
    for (const [ci, c] of e.chunks.entries()) {
      const target = ci === 0 ? out : this.#buffer("gather_part", rows * d);
      await embedRows(r, { table: c.w, ids: idBufs[ci], out: target, rows });
      if (ci > 0) {
        const sum = this.#buffer("gather_sum", rows * d);
        await add(r, { a: out, b: target, out: sum, n: rows * d });
        r.copy(sum, 0, out, 0, rows * d);
      }
    }
  }

  /**
   * Uploads a step's key visibility: FlashAttention's key ranges when every row's real keys are
   * one run to the end (left padding), else the additive key mask of the plain attention kernel.
   */
  #writeMask(cache: GpuKvCache, mask: Int32Array): void {
    const b = cache.batchSize;
    const ranges = keyRanges(mask, b, mask.length / b);
    cache.flash = ranges !== null;
    if (ranges) {
      this.r.write(cache.rows, ranges);
      return;
    }
    const bias = new Float32Array(mask.length);
    for (let i = 0; i < mask.length; i++) bias[i] = mask[i] ? 0 : -Infinity;
    this.r.write(cache.mask, bias);
  }

  #rows(rows: number): Scratch {
    let s = this.#scratch.get(rows);
    if (!s) {
      // Keep the decode-sized set and one other (the last prefill) only.
      for (const [n, old] of this.#scratch) {
        if (n > 16) {
          old.destroy();
          this.#scratch.delete(n);
        }
      }
      s = new Scratch(this.r, rows, this.cfg);
      this.#scratch.set(rows, s);
    }
    return s;
  }

  /**
   * SigLIP + projector on `b` CHW images: features [b, numImageTokens, projectionDim], divided by
   * sqrt(text hidden) like the converted vision encoder's output.
   */
  async encode(pixels: Float32Array, b: number): Promise<GpuTensor> {
    const r = this.r;
    const v = this.cfg.vision;
    const s = v.imageSize;
    const p = v.patchSize;
    const g = Math.floor(s / p);
    const n = g * g;
    const dv = v.hiddenSize;
    const kp = 3 * p * p;
    // Patches [b·n, 3·p·p] in the (channel, y, x) order of the conv weight [dv, 3, p, p].
    const patches = new Float32Array(b * n * kp);
    for (let im = 0; im < b; im++) {
      for (let gy = 0; gy < g; gy++) {
        for (let gx = 0; gx < g; gx++) {
          const base = (im * n + gy * g + gx) * kp;
          for (let c = 0; c < 3; c++) {
            for (let y = 0; y < p; y++) {
              const src = ((im * 3 + c) * s + gy * p + y) * s + gx * p;
              patches.set(pixels.subarray(src, src + p), base + (c * p + y) * p);
            }
          }
        }
      }
    }
    const rows = b * n;
    const tmp: GpuTensor[] = [];
    const buf = (len: number, label: string) => {
      const t = r.zeros(len, label);
      tmp.push(t);
      return t;
    };
    const pt = r.tensor(patches, "patches");
    tmp.push(pt);
    const emb = buf(rows * dv, "patch_embed");
    let x = buf(rows * dv, "vx");
    const hbuf = buf(rows * dv, "vh");
    const q = buf(rows * dv, "vq");
    const k = buf(rows * dv, "vk");
    const vv = buf(rows * dv, "vv");
    const kc = buf(rows * dv, "vkc");
    const vc = buf(rows * dv, "vvc");
    const att = buf(rows * dv, "vattn");
    const f = buf(rows * v.intermediateSize, "vf");
    let x2 = buf(rows * dv, "vx2");
    await this.#mm(pt, this.w.patch, emb, rows);
    await add(r, { a: emb, b: this.w.posEmb, out: x, n: rows * dv, nb: n * dv });
    const heads = v.numHeads;
    const hd = dv / heads;
    const eps = v.layerNormEps;
    for (const L of this.w.vision) {
      await layernorm(r, { x, w: L.ln1w, b: L.ln1b, out: hbuf, rows, dim: dv, eps });
      await this.#mm(hbuf, L.qw, q, rows);
      await this.#mm(hbuf, L.kw, k, rows);
      await this.#mm(hbuf, L.vw, vv, rows);
      const kv = { batch: b, tokens: n, heads, headDim: hd, past: 0, capacity: n };
      await kvAppend(r, { src: k, cache: kc, ...kv });
      await kvAppend(r, { src: vv, cache: vc, ...kv });
      await flashAttention(r, {
        q,
        k: kc,
        v: vc,
        out: att,
        batch: b,
        heads,
        kvHeads: heads,
        tokens: n,
        headDim: hd,
        past: 0,
        capacity: n,
        scale: hd ** -0.5,
      });
      await this.#mm(att, L.ow, x2, rows, { residual: x });
      [x, x2] = [x2, x];
      await layernorm(r, { x, w: L.ln2w, b: L.ln2b, out: hbuf, rows, dim: dv, eps });
      await this.#mm(hbuf, L.fc1w, f, rows, { gelu: true });
      await this.#mm(f, L.fc2w, x2, rows, { residual: x });
      [x, x2] = [x2, x];
    }
    await layernorm(r, {
      x,
      w: this.w.postLnW,
      b: this.w.postLnB,
      out: hbuf,
      rows,
      dim: dv,
      eps,
    });
    const pd = this.cfg.projectionDim;
    const proj = buf(rows * pd, "proj");
    const feats = r.zeros(rows * pd, "image_features");
    await this.#mm(hbuf, this.w.proj, proj, rows);
    await scale(r, {
      x: proj,
      out: feats,
      n: rows * pd,
      s: 1 / Math.sqrt(this.cfg.text.hiddenSize),
    });
    await r.sync();
    for (const t of tmp) t.buffer.destroy();
    return feats;
  }

  /** A cache for `b` rows holding up to `capacity` positions. */
  newCache(b: number, capacity: number): GpuKvCache {
    const t = this.cfg.text;
    const f16 = this.kvF16 && t.headDim % 2 === 0;
    const per = (b * t.numKvHeads * capacity * t.headDim) / (f16 ? 2 : 1);
    const keys: GpuTensor[] = [];
    const values: GpuTensor[] = [];
    for (let i = 0; i < t.numLayers; i++) {
      keys.push(this.r.zeros(per, `k${i}`));
      values.push(this.r.zeros(per, `v${i}`));
    }
    const mask = this.r.zeros(b * capacity, "mask");
    const rows = this.r.zeros(2 * b, "key_ranges");
    return new GpuKvCache(b, capacity, keys, values, mask, rows, f16);
  }

  /** A copy of `c` with room for `capacity` positions (the old cache is destroyed). */
  async grow(c: GpuKvCache, capacity: number): Promise<GpuKvCache> {
    const t = this.cfg.text;
    const next = this.newCache(c.batchSize, capacity);
    if (next.kvF16 !== c.kvF16) throw new RangeError("grow: the KV format changed");
    // Elements per word: halves are packed two per u32 (capacity·headDim is even).
    const per = c.kvF16 ? 2 : 1;
    const rowOld = (c.capacity * t.headDim) / per;
    const rowNew = (capacity * t.headDim) / per;
    const used = (c.length * t.headDim) / per;
    for (let i = 0; i < t.numLayers; i++) {
      for (let bh = 0; bh < c.batchSize * t.numKvHeads; bh++) {
        this.r.copy(c.keys[i], bh * rowOld, next.keys[i], bh * rowNew, used);
        this.r.copy(c.values[i], bh * rowOld, next.values[i], bh * rowNew, used);
      }
    }
    next.length = c.length;
    await this.r.sync();
    c.destroy();
    return next;
  }

  /**
   * Runs the decoder on `s` new tokens per row whose input embeddings (already merged, not yet
   * multiplied by sqrt(D)) are in the scratch `h` buffer; appends their keys and values to the
   * cache and leaves the final hidden states in the scratch `h`. The step's key mask is already
   * in `cache.mask` (`#writeMask`); `positions` is [B, s].
   */
  async #layers(
    sc: Scratch,
    cache: GpuKvCache,
    s: number,
    positions: GpuTensor,
  ): Promise<void> {
    const r = this.r;
    const t = this.cfg.text;
    const b = cache.batchSize;
    const rows = b * s;
    const d = t.hiddenSize;
    const hd = t.headDim;
    const past = cache.length;
    const total = past + s;
    let h = sc.h;
    let h2 = sc.sum;
    await scale(r, { x: h, out: h2, n: rows * d, s: this.#sqrtD });
    [h, h2] = [h2, h];
    const eps = t.rmsNormEps;
    const flash = cache.flash;
    const keys = past + s;
    const g = t.numHeads / t.numKvHeads;
    // Split-KV for decode over a long cache (few workgroups otherwise).
    const splits = s !== 1 || !flash
      ? 1
      : Math.min(this.splitKv || flashSplits(keys, b * t.numKvHeads * Math.ceil(g / 8)), keys);
    const lens = flashScratchLengths(splits, b, t.numHeads, s, hd);
    const scratch = splits > 1
      ? { part: this.#buffer("flash_part", lens.part), ml: this.#buffer("flash_ml", lens.ml) }
      : undefined;
    for (const [i, L] of this.w.text.entries()) {
      const inNorm = { gain: L.inputNorm, eps };
      await this.#mm(h, L.qw, sc.q, rows, { norm: inNorm });
      await this.#mm(h, L.kw, sc.k, rows, { norm: inNorm });
      await this.#mm(h, L.vw, sc.v, rows, { norm: inNorm });
      const rp = { positions, batch: b, tokens: s, headDim: hd, theta: t.ropeTheta };
      await rope(r, { x: sc.q, heads: t.numHeads, ...rp });
      await rope(r, { x: sc.k, heads: t.numKvHeads, ...rp });
      const kv = {
        batch: b,
        tokens: s,
        heads: t.numKvHeads,
        headDim: hd,
        past,
        capacity: cache.capacity,
      };
      const append = cache.kvF16 ? kvAppendF16 : kvAppend;
      await append(r, { src: sc.k, cache: cache.keys[i], ...kv });
      await append(r, { src: sc.v, cache: cache.values[i], ...kv });
      const att = {
        q: sc.q,
        k: cache.keys[i],
        v: cache.values[i],
        out: sc.attn,
        batch: b,
        heads: t.numHeads,
        kvHeads: t.numKvHeads,
        tokens: s,
        headDim: hd,
        past,
        capacity: cache.capacity,
        scale: t.queryPreAttnScalar ** -0.5,
        softcap: t.attnLogitSoftcap ?? 0,
      };
      if (flash) {
        await flashAttention(r, { ...att, rows: cache.rows, splits, scratch, kvF16: cache.kvF16 });
      } else if (cache.kvF16) {
        throw new RangeError("an f16 KV cache needs left-padded attention masks");
      } else {
        await attention(r, { ...att, mask: cache.mask, maskStride: total });
      }
      if (L.postAttnNorm) {
        await this.#mm(sc.attn, L.ow, sc.o, rows);
        await rmsnorm(r, { x: sc.o, w: L.postAttnNorm, out: sc.x, rows, dim: d, eps });
        await add(r, { a: h, b: sc.x, out: h2, n: rows * d });
      } else {
        await this.#mm(sc.attn, L.ow, h2, rows, { residual: h });
      }
      [h, h2] = [h2, h];
      const mlpNorm = { norm: { gain: L.mlpNorm, eps }, glu: true };
      await this.#mm(h, L.gateUp, sc.mlp, rows, mlpNorm);
      if (L.postMlpNorm) {
        await this.#mm(sc.mlp, L.down, sc.o, rows);
        await rmsnorm(r, { x: sc.o, w: L.postMlpNorm, out: sc.x, rows, dim: d, eps });
        await add(r, { a: h, b: sc.x, out: h2, n: rows * d });
      } else {
        await this.#mm(sc.mlp, L.down, h2, rows, { residual: h });
      }
      [h, h2] = [h2, h];
    }
    if (h !== sc.h) r.copy(h, 0, sc.h, 0, rows * d);
    cache.length = total;
  }

  /** Final norm (fused) and LM head over `rows` hidden rows of `x` into `logits` [rows, V]. */
  async #head(x: GpuTensor, rows: number, logits: GpuTensor): Promise<void> {
    const norm = { gain: this.w.finalNorm, eps: this.cfg.text.rmsNormEps };
    await this.#mm(x, this.w.lmHead, logits, rows, { norm });
  }

  /**
   * Prefill: embeds `ids` [B, n], writes each row's image features over its `<image>` tokens,
   * runs the decoder and records the logits of the last `keep` positions of each row (0 = all)
   * into a new [B·keep, V] buffer.
   */
  async prefill(
    cache: GpuKvCache,
    ids: Int32Array,
    n: number,
    mask: Int32Array,
    positions: Int32Array,
    image: GpuTensor | null,
    imageTokens: number,
    keep: number,
  ): Promise<GpuTensor> {
    const r = this.r;
    const t = this.cfg.text;
    const b = cache.batchSize;
    const d = t.hiddenSize;
    const rows = b * n;
    const sc = this.#rows(rows);
    const posBuf = r.tensor(positions, "positions");
    this.#writeMask(cache, mask);
    await this.#gather(ids, sc.h);
    if (image) {
      const imageId = this.cfg.imageTokenIndex;
      for (let row = 0; row < b; row++) {
        let k = 0;
        for (let i = 0; i < n; i++) {
          if (ids[row * n + i] !== imageId || k === imageTokens) continue;
          // Runs of <image> tokens are copied in one piece.
          let run = 1;
          while (
            i + run < n && ids[row * n + i + run] === imageId && k + run < imageTokens
          ) run++;
          r.copy(image, (row * imageTokens + k) * d, sc.h, (row * n + i) * d, run * d);
          k += run;
          i += run - 1;
        }
        if (k !== imageTokens) {
          throw new RangeError(
            `prefill: row ${row} has ${k} <image> tokens, expected ${imageTokens}`,
          );
        }
      }
    }
    await this.#layers(sc, cache, n, posBuf);
    const kept = keep <= 0 || keep > n ? n : keep;
    const last = r.zeros(b * kept * d, "last");
    for (let row = 0; row < b; row++) {
      r.copy(sc.h, (row * n + n - kept) * d, last, row * kept * d, kept * d);
    }
    const logits = r.zeros(b * kept * t.vocabSize, "logits");
    await this.#head(last, b * kept, logits);
    await r.sync();
    for (const x of [posBuf, last]) x.buffer.destroy();
    return logits;
  }

  /** One decode step: `tokens` [B] at `positions` [B]; logits [B, V] into `logits`. */
  async decode(
    cache: GpuKvCache,
    tokens: Int32Array,
    positions: GpuTensor,
    mask: Int32Array,
    logits: GpuTensor,
  ): Promise<void> {
    const b = cache.batchSize;
    const sc = this.#rows(b);
    this.#writeMask(cache, mask);
    await this.#gather(tokens, sc.h);
    await this.#layers(sc, cache, 1, positions);
    await this.#head(sc.h, b, logits);
  }

  /** Frees scratch buffers (weights stay until the device is destroyed). */
  destroy(): void {
    for (const s of this.#scratch.values()) s.destroy();
    this.#scratch.clear();
    for (const t of this.#grow.values()) t.buffer.destroy();
    this.#grow.clear();
  }
}
