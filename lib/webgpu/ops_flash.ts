/**
 * FlashAttention-style attention (kernels/flash_attention.wgsl) over a [batch, kvHeads, capacity,
 * headDim] KV cache: online softmax over key tiles in workgroup memory, the score matrix never
 * written; prefix-LM / causal / left-padding visibility from per-row key ranges, MQA / GQA, the
 * Gemma 2 logit soft-cap, a sliding window, and a split-KV variant for long decode (partial
 * results per key range, merged by kernels/attn_combine.wgsl).
 *
 * Sizes from the adapter's limits: 32 threads per query row (each owns headDim / 32 output
 * dims, headDim <= 256), BR query rows per workgroup (8, fewer when maxComputeInvocationsPerWorkgroup
 * is below 256 or fewer rows exist), and BC keys per tile: the largest of 32, 16, 8, 4, 2 for
 * which 4·(BR·DMAX + BC·(DMAX + 1) + BR·BC) bytes fit maxComputeWorkgroupStorageSize
 * (DMAX = headDim rounded up to a multiple of 32), halving BR when none does. On a software
 * adapter (llvmpipe) the budget is 4 KiB and BC at most 4, which keeps its compile time short.
 * @module
 */

import { type HeadLayout, headStrides, type KvAppendArgs } from "./ops.ts";
import { type GpuRunner, type GpuTensor, grid, ParamWriter } from "./runner.ts";
import {
  floorPow2,
  isSoftwareAdapter,
  variantPipeline,
  workgroupSize,
  workgroupStorage,
  writeDummy,
} from "./variants.ts";

/** Largest head size of the flash kernel. */
export const FLASH_MAX_HEAD_DIM = 256;

/** Scratch of the split-KV variant (see `flashScratchLengths`). */
export interface FlashScratch {
  /** Unnormalised partial outputs [splits, batch·heads·tokens, headDim]. */
  readonly part: GpuTensor;
  /** (running max, sum) per split and row: [splits, batch·heads·tokens, 2]. */
  readonly ml: GpuTensor;
}

/** Arguments of `flashAttention`. */
export interface FlashAttentionArgs {
  /** Queries [batch, tokens, heads, headDim] in `layout`. */
  readonly q: GpuTensor;
  /** Key cache [batch, kvHeads, capacity, headDim]: f32, or halves with `kvF16`. */
  readonly k: GpuTensor;
  /** Value cache, same layout and format as k. */
  readonly v: GpuTensor;
  /** K and V are f16 caches written by `kvAppendF16` (IEEE halves, two per u32). */
  readonly kvF16?: boolean;
  /** Output, same layout and size as q (not q). */
  readonly out: GpuTensor;
  /** Batch rows. */
  readonly batch: number;
  /** Query heads. */
  readonly heads: number;
  /** Key/value heads (divides heads). */
  readonly kvHeads: number;
  /** New tokens (queries) per row; query t sits at cache position past + t. */
  readonly tokens: number;
  /** Head size (<= 256). */
  readonly headDim: number;
  /** Positions before the new tokens; the cache holds past + tokens valid keys. */
  readonly past: number;
  /** Cache capacity in positions. */
  readonly capacity: number;
  /** Score scale (headDim^-0.5, or query_pre_attn_scalar^-0.5). */
  readonly scale: number;
  /** Soft-cap c: s = tanh(s / c)·c after scaling (0 = none). */
  readonly softcap?: number;
  /** Sliding window (0 = none): key j is hidden from position i when i - j >= window. */
  readonly window?: number;
  /**
   * Optional u32 [batch, 2] per-row key ranges (firstKey, prefixLen): keys before firstKey are
   * hidden (left padding); keys below prefixLen are seen by every query (prefix-LM), later keys
   * only by queries at or after them (causal). Overrides `causal`.
   */
  readonly rows?: GpuTensor;
  /** Without `rows`: causal among all keys (true) or full attention (false, the default). */
  readonly causal?: boolean;
  /** Element order of q and out (default "bthd"). */
  readonly layout?: HeadLayout;
  /** Key ranges to split the keys into (default 1); > 1 needs `scratch`. */
  readonly splits?: number;
  /** Scratch for splits > 1, at least `flashScratchLengths` long. */
  readonly scratch?: FlashScratch;
  /** Tile override (query rows br <= 8, keys per tile bc; powers of two), for tests and tuning. */
  readonly tile?: { readonly br: number; readonly bc: number };
}

/** Element counts of the split-KV scratch buffers (part, ml). */
export function flashScratchLengths(
  splits: number,
  batch: number,
  heads: number,
  tokens: number,
  headDim: number,
): { part: number; ml: number } {
  const rows = batch * heads * tokens;
  return { part: splits * rows * headDim, ml: splits * rows * 2 };
}

/**
 * A split count for `keys` keys when only `workgroups` workgroups would run otherwise: enough
 * splits of at least 128 keys to reach ~`target` workgroups, at most 64 (1 when no split pays).
 * A heuristic still to be tuned on a GPU (none was available when it was written).
 */
export function flashSplits(keys: number, workgroups: number, target = 128): number {
  if (workgroups >= target || keys < 256) return 1;
  return Math.max(1, Math.min(Math.floor(keys / 128), Math.ceil(target / workgroups), 64));
}

/**
 * Workgroup memory budget on a software adapter: llvmpipe's shader compile time grows about
 * quadratically with the workgroup arrays' size (measured: 4 KiB 1.1 s, 8 KiB 6 s, 16 KiB 25 s).
 */
const SOFTWARE_STORAGE = 4096;

interface Plan {
  readonly tpq: number;
  readonly br: number;
  readonly bc: number;
  readonly dmax: number;
}

function plan(r: GpuRunner, rowsPerKv: number, headDim: number): Plan {
  const tpq = 32;
  const maxThreads = workgroupSize(r, 256);
  if (maxThreads < tpq) throw new RangeError(`flashAttention needs ${tpq} threads a workgroup`);
  const dmax = Math.ceil(headDim / tpq) * tpq;
  const soft = isSoftwareAdapter(r);
  const limit = soft ? Math.min(SOFTWARE_STORAGE, workgroupStorage(r)) : workgroupStorage(r);
  const top = soft ? 4 : 32;
  for (let br = Math.min(maxThreads / tpq, 8, floorPow2(2 * rowsPerKv - 1)); br >= 1; br /= 2) {
    for (let bc = top; bc >= 2; bc /= 2) {
      if (4 * (br * dmax + bc * (dmax + 1) + br * bc) <= limit) return { tpq, br, bc, dmax };
    }
  }
  throw new RangeError(
    `flashAttention: headDim ${headDim} does not fit maxComputeWorkgroupStorageSize ${limit}`,
  );
}

function positive(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${what} must be a positive integer`);
}

function need(t: GpuTensor, n: number, what: string): void {
  if (t.length < n) throw new RangeError(`${what}: buffer holds ${t.length} values, needs ${n}`);
}

/** Records softmax(cap(q·kᵀ·scale) over visible keys)·v for every query row. */
export async function flashAttention(r: GpuRunner, x: FlashAttentionArgs): Promise<void> {
  const { batch, heads, kvHeads, tokens, headDim, past, capacity } = x;
  positive(batch, "flashAttention batch");
  positive(heads, "flashAttention heads");
  positive(kvHeads, "flashAttention kvHeads");
  positive(tokens, "flashAttention tokens");
  positive(headDim, "flashAttention headDim");
  if (heads % kvHeads !== 0) {
    throw new RangeError(`flashAttention: ${heads} heads not a multiple of ${kvHeads} kv heads`);
  }
  if (headDim > FLASH_MAX_HEAD_DIM) {
    throw new RangeError(`flashAttention: headDim ${headDim} > ${FLASH_MAX_HEAD_DIM}`);
  }
  if (past + tokens > capacity) {
    throw new RangeError(`flashAttention: ${past} + ${tokens} positions exceed ${capacity}`);
  }
  const qn = batch * tokens * heads * headDim;
  need(x.q, qn, "flashAttention q");
  need(x.out, qn, "flashAttention out");
  const kvWords = (batch * kvHeads * capacity * headDim) / (x.kvF16 ? 2 : 1);
  if (x.kvF16 && headDim % 2 !== 0) {
    throw new RangeError("flashAttention: f16 KV needs even headDim");
  }
  need(x.k, kvWords, "flashAttention k");
  need(x.v, kvWords, "flashAttention v");
  if (x.rows) need(x.rows, 2 * batch, "flashAttention rows");
  const splits = x.splits ?? 1;
  positive(splits, "flashAttention splits");
  const keys = past + tokens;
  const splitLen = Math.ceil(keys / splits);
  if (splits > 1) {
    if (!x.scratch) throw new RangeError("flashAttention: splits > 1 needs scratch buffers");
    const n = flashScratchLengths(splits, batch, heads, tokens, headDim);
    need(x.scratch.part, n.part, "flashAttention scratch part");
    need(x.scratch.ml, n.ml, "flashAttention scratch ml");
  }
  const g = heads / kvHeads;
  const pl = x.tile ? { ...plan(r, 1, headDim), ...x.tile } : plan(r, g * tokens, headDim);
  if (pl.br > 8 || pl.br * pl.tpq > workgroupSize(r, 256)) {
    throw new RangeError(`flashAttention: ${pl.br} query rows a workgroup not usable here`);
  }
  const gx = Math.ceil((g * tokens) / pl.br);
  if (gx > 65535 || batch * kvHeads > 65535 || splits > 65535) {
    throw new RangeError(`flashAttention: ${gx}×${batch * kvHeads}×${splits} workgroups`);
  }
  const s = headStrides(x.layout ?? "bthd", tokens, heads, headDim);
  const p = new ParamWriter()
    .u32(batch).u32(heads).u32(kvHeads).u32(tokens).u32(headDim).u32(past)
    .u32(x.window ?? 0).u32(x.rows ? 1 : 0).u32(x.causal ? 0 : 0xffffffff)
    .u32(splits).u32(splitLen)
    .u32(s.sb).u32(s.sh).u32(s.st)
    .u32(kvHeads * capacity * headDim).u32(capacity * headDim).u32(headDim)
    .u32(s.sb).u32(s.sh).u32(s.st)
    .f32(x.scale).f32(x.softcap ?? 0).u32(0).u32(0);
  const pipeline = await variantPipeline(r, "flash_attention", {
    TPQ: pl.tpq,
    BR: pl.br,
    BC: pl.bc,
    DMAX: pl.dmax,
    KV_F16: x.kvF16 ? 1 : 0,
  });
  const w = writeDummy(r);
  const part = splits > 1 ? x.scratch!.part : w;
  const ml = splits > 1 ? x.scratch!.ml : w;
  const buffers = [x.q, x.k, x.v, x.rows ?? r.dummy, splits > 1 ? w : x.out, part, ml];
  r.record(pipeline, "flash_attention", buffers, p, [gx, batch * kvHeads, splits]);
  if (splits > 1) {
    const c = new ParamWriter().u32(batch).u32(heads).u32(tokens).u32(headDim).u32(splits)
      .u32(s.sb).u32(s.sh).u32(s.st);
    const combine = await variantPipeline(r, "attn_combine", {});
    r.record(combine, "attn_combine", [part, ml, x.out], c, grid(Math.ceil(qn / 256)));
  }
}

/**
 * Records the copy of new keys or values (f32, [batch, tokens, heads, headDim] in `layout`) into
 * an f16 cache [batch, heads, capacity, headDim] of IEEE halves two per u32 (capacity·headDim/2
 * words per head), rounded to nearest even; headDim must be even. Read it with `kvF16: true`.
 */
export async function kvAppendF16(r: GpuRunner, x: KvAppendArgs): Promise<void> {
  const { batch, tokens, heads, headDim, past, capacity } = x;
  positive(batch, "kvAppendF16 batch");
  positive(tokens, "kvAppendF16 tokens");
  positive(heads, "kvAppendF16 heads");
  positive(headDim, "kvAppendF16 headDim");
  if (headDim % 2 !== 0) throw new RangeError(`kvAppendF16: headDim ${headDim} is odd`);
  if (past + tokens > capacity) {
    throw new RangeError(`kvAppendF16: ${past} + ${tokens} positions exceed capacity ${capacity}`);
  }
  need(x.src, batch * tokens * heads * headDim, "kvAppendF16 src");
  need(x.cache, (batch * heads * capacity * headDim) / 2, "kvAppendF16 cache");
  const s = headStrides(x.layout ?? "bthd", tokens, heads, headDim);
  const p = new ParamWriter().u32(batch).u32(tokens).u32(heads).u32(headDim).u32(past)
    .u32(s.sb).u32(s.st).u32(s.sh)
    .u32(heads * capacity * headDim).u32(capacity * headDim).u32(headDim).u32(0);
  const pipeline = await variantPipeline(r, "kv_append_f16", {});
  const words = (batch * tokens * heads * headDim) / 2;
  r.record(pipeline, "kv_append_f16", [x.src, x.cache], p, grid(Math.ceil(words / 256)));
}
