/**
 * Typed dispatch helpers, one per kernel in `kernels/`: each checks its sizes, packs the
 * kernel's uniform struct and records the dispatch on the runner (submitted on flush or read).
 * Await each call in order. Shapes are row-major, f32 unless noted.
 * @module
 */

import { type GpuRunner, type GpuTensor, grid, ParamWriter } from "./runner.ts";

/** Element order of a [batch, tokens, heads, headDim] activation: token-major or head-major. */
export type HeadLayout = "bthd" | "bhtd";

/** Element strides (batch, token, head) of a layout; the head_dim stride is 1. */
export interface HeadStrides {
  /** Batch stride. */
  readonly sb: number;
  /** Token stride. */
  readonly st: number;
  /** Head stride. */
  readonly sh: number;
}

/** The strides of `layout` for `tokens` × `heads` vectors of `headDim`. */
export function headStrides(
  layout: HeadLayout,
  tokens: number,
  heads: number,
  headDim: number,
): HeadStrides {
  return layout === "bthd"
    ? { sb: tokens * heads * headDim, st: heads * headDim, sh: headDim }
    : { sb: heads * tokens * headDim, st: headDim, sh: tokens * headDim };
}

function need(t: GpuTensor, n: number, what: string): void {
  if (t.length < n) throw new RangeError(`${what}: buffer holds ${t.length} values, needs ${n}`);
}

function positive(v: number, what: string): void {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${what} must be a positive integer`);
}

/** Arguments of `matmul`: out[m,n] = a[m,k] · w[n,k]^T (+ bias[n]). */
export interface MatmulArgs {
  /** [m, k] input. */
  readonly a: GpuTensor;
  /** [n, k] weight (HF Linear [out, in]). */
  readonly w: GpuTensor;
  /** Optional [n] bias. */
  readonly bias?: GpuTensor;
  /** [m, n] output. */
  readonly out: GpuTensor;
  /** Rows of a. */
  readonly m: number;
  /** Output features. */
  readonly n: number;
  /** Input features. */
  readonly k: number;
  /** "tiled" (matmul.wgsl), "matvec" (matvec.wgsl, k % 4 == 0) or "auto" (matvec for m <= 4). */
  readonly path?: "auto" | "tiled" | "matvec";
}

/** Rows up to which `matmul` picks the matrix-vector kernel by default. */
export const MATVEC_MAX_ROWS = 4;

/** Records C = A·W^T (+ bias) on the tiled kernel, or on the matrix-vector kernel for few rows. */
export async function matmul(r: GpuRunner, x: MatmulArgs): Promise<void> {
  const { m, n, k } = x;
  positive(m, "matmul m");
  positive(n, "matmul n");
  positive(k, "matmul k");
  need(x.a, m * k, "matmul a");
  need(x.w, n * k, "matmul w");
  need(x.out, m * n, "matmul out");
  if (x.bias) need(x.bias, n, "matmul bias");
  const path = x.path ?? "auto";
  const vec = path === "matvec" || (path === "auto" && m <= MATVEC_MAX_ROWS && k % 4 === 0);
  const bias = x.bias ?? r.dummy;
  if (vec) {
    if (k % 4 !== 0) throw new RangeError(`matvec needs k % 4 == 0, got k = ${k}`);
    if (m > 65535) throw new RangeError(`matvec takes at most 65535 rows, got ${m}`);
    const p = new ParamWriter().u32(m).u32(n).u32(k / 4).u32(x.bias ? 1 : 0);
    await r.dispatch("matvec", [x.a, x.w, bias, x.out], p, grid(Math.ceil(n / 4), m));
  } else {
    const p = new ParamWriter().u32(m).u32(n).u32(k).u32(x.bias ? 1 : 0);
    const gx = Math.ceil(n / 32);
    const gy = Math.ceil(m / 32);
    if (gx > 65535 || gy > 65535) throw new RangeError(`matmul ${m}×${n} is too large`);
    await r.dispatch("matmul", [x.a, x.w, bias, x.out], p, [gx, gy, 1]);
  }
}

/** Arguments of `rmsnorm` (Gemma): out = x * rsqrt(mean(x²) + eps) * (1 + w). */
export interface RmsNormArgs {
  /** [rows, dim] input. */
  readonly x: GpuTensor;
  /** [dim] weight (stored as w, applied as 1 + w). */
  readonly w: GpuTensor;
  /** [rows, dim] output (not x). */
  readonly out: GpuTensor;
  /** Rows. */
  readonly rows: number;
  /** Row width. */
  readonly dim: number;
  /** Epsilon (default 1e-6). */
  readonly eps?: number;
}

/** Records a Gemma RMSNorm over each row. */
export async function rmsnorm(r: GpuRunner, x: RmsNormArgs): Promise<void> {
  positive(x.rows, "rmsnorm rows");
  positive(x.dim, "rmsnorm dim");
  need(x.x, x.rows * x.dim, "rmsnorm x");
  need(x.w, x.dim, "rmsnorm w");
  need(x.out, x.rows * x.dim, "rmsnorm out");
  const p = new ParamWriter().u32(x.rows).u32(x.dim).f32(x.eps ?? 1e-6).u32(0);
  await r.dispatch("rmsnorm", [x.x, x.w, x.out], p, grid(x.rows));
}

/** Arguments of `layernorm` (SigLIP): out = (x - mean) * rsqrt(var + eps) * w + b. */
export interface LayerNormArgs {
  /** [rows, dim] input. */
  readonly x: GpuTensor;
  /** [dim] weight. */
  readonly w: GpuTensor;
  /** [dim] bias. */
  readonly b: GpuTensor;
  /** [rows, dim] output (not x). */
  readonly out: GpuTensor;
  /** Rows. */
  readonly rows: number;
  /** Row width. */
  readonly dim: number;
  /** Epsilon (default 1e-6). */
  readonly eps?: number;
}

/** Records a LayerNorm over each row. */
export async function layernorm(r: GpuRunner, x: LayerNormArgs): Promise<void> {
  positive(x.rows, "layernorm rows");
  positive(x.dim, "layernorm dim");
  need(x.x, x.rows * x.dim, "layernorm x");
  need(x.w, x.dim, "layernorm w");
  need(x.b, x.dim, "layernorm b");
  need(x.out, x.rows * x.dim, "layernorm out");
  const p = new ParamWriter().u32(x.rows).u32(x.dim).f32(x.eps ?? 1e-6).u32(0);
  await r.dispatch("layernorm", [x.x, x.w, x.b, x.out], p, grid(x.rows));
}

/** Arguments of the elementwise kernels (`gelu`, `relu`). */
export interface UnaryArgs {
  /** Input. */
  readonly x: GpuTensor;
  /** Output (not x). */
  readonly out: GpuTensor;
  /** Elements. */
  readonly n: number;
}

/** Records out = gelu_tanh(x). */
export async function gelu(r: GpuRunner, x: UnaryArgs): Promise<void> {
  await unary(r, "gelu", x);
}

/** Records out = max(x, 0). */
export async function relu(r: GpuRunner, x: UnaryArgs): Promise<void> {
  await unary(r, "relu", x);
}

async function unary(r: GpuRunner, name: "gelu" | "relu", x: UnaryArgs): Promise<void> {
  positive(x.n, `${name} n`);
  need(x.x, x.n, `${name} x`);
  need(x.out, x.n, `${name} out`);
  const p = new ParamWriter().u32(x.n);
  await r.dispatch(name, [x.x, x.out], p, grid(Math.ceil(x.n / 256)));
}

/** Arguments of `geluMul`: out[r, c] = gelu_tanh(gate[r, c]) * up[r, c]. */
export interface GeluMulArgs {
  /** Gate values (or a fused gate|up buffer). */
  readonly gate: GpuTensor;
  /** Up values (default: the gate buffer, for a fused projection). */
  readonly up?: GpuTensor;
  /** [rows, cols] output. */
  readonly out: GpuTensor;
  /** Rows. */
  readonly rows: number;
  /** Output columns (the MLP's intermediate size). */
  readonly cols: number;
  /** Row stride of the inputs (default cols; 2*cols for a fused gate|up row). */
  readonly inStride?: number;
  /** Column offset of gate within a row (default 0). */
  readonly gateOffset?: number;
  /** Column offset of up within a row (default 0, or cols when `up` is omitted). */
  readonly upOffset?: number;
}

/** Records the gated-MLP combine gelu_tanh(gate) * up. */
export async function geluMul(r: GpuRunner, x: GeluMulArgs): Promise<void> {
  positive(x.rows, "geluMul rows");
  positive(x.cols, "geluMul cols");
  const up = x.up ?? x.gate;
  const stride = x.inStride ?? (x.up ? x.cols : 2 * x.cols);
  const go = x.gateOffset ?? 0;
  const uo = x.upOffset ?? (x.up ? 0 : x.cols);
  const span = (x.rows - 1) * stride + x.cols;
  need(x.gate, span + go, "geluMul gate");
  need(up, span + uo, "geluMul up");
  need(x.out, x.rows * x.cols, "geluMul out");
  const p = new ParamWriter().u32(x.rows).u32(x.cols).u32(stride).u32(go).u32(uo);
  await r.dispatch("gelu_mul", [x.gate, up, x.out], p, grid(Math.ceil((x.rows * x.cols) / 256)));
}

/** Arguments of `rope`: rotate-half RoPE in place on q or k. */
export interface RopeArgs {
  /** Activations, rotated in place. */
  readonly x: GpuTensor;
  /** i32 [batch, tokens] positions. */
  readonly positions: GpuTensor;
  /** Batch rows. */
  readonly batch: number;
  /** Tokens per row. */
  readonly tokens: number;
  /** Heads. */
  readonly heads: number;
  /** Head size (even). */
  readonly headDim: number;
  /** Element order of x (default "bthd"). */
  readonly layout?: HeadLayout;
  /** RoPE base (default 10000). */
  readonly theta?: number;
}

/** Records rotate-half RoPE with explicit integer positions per token. */
export async function rope(r: GpuRunner, x: RopeArgs): Promise<void> {
  const { batch, tokens, heads, headDim } = x;
  positive(batch, "rope batch");
  positive(tokens, "rope tokens");
  positive(heads, "rope heads");
  positive(headDim, "rope headDim");
  if (headDim % 2 !== 0) throw new RangeError(`rope headDim must be even, got ${headDim}`);
  need(x.x, batch * tokens * heads * headDim, "rope x");
  need(x.positions, batch * tokens, "rope positions");
  const s = headStrides(x.layout ?? "bthd", tokens, heads, headDim);
  const p = new ParamWriter().u32(batch).u32(tokens).u32(heads).u32(headDim)
    .u32(s.sb).u32(s.st).u32(s.sh).f32(Math.log(x.theta ?? 10000));
  const pairs = (batch * tokens * heads * headDim) / 2;
  await r.dispatch("rope", [x.x, x.positions], p, grid(Math.ceil(pairs / 256)));
}

/** Arguments of `kvAppend`: cache[b, h, past + t, :] = src[b, t, h, :]. */
export interface KvAppendArgs {
  /** New keys or values, [batch, tokens, heads, headDim] in `layout`. */
  readonly src: GpuTensor;
  /** Cache [batch, heads, capacity, headDim]. */
  readonly cache: GpuTensor;
  /** Batch rows. */
  readonly batch: number;
  /** New tokens per row. */
  readonly tokens: number;
  /** KV heads. */
  readonly heads: number;
  /** Head size. */
  readonly headDim: number;
  /** Positions already in the cache. */
  readonly past: number;
  /** Positions the cache can hold. */
  readonly capacity: number;
  /** Element order of src (default "bthd"). */
  readonly layout?: HeadLayout;
}

/** Records the copy of new keys or values into a [batch, heads, capacity, headDim] cache. */
export async function kvAppend(r: GpuRunner, x: KvAppendArgs): Promise<void> {
  const { batch, tokens, heads, headDim, past, capacity } = x;
  positive(batch, "kvAppend batch");
  positive(tokens, "kvAppend tokens");
  positive(heads, "kvAppend heads");
  positive(headDim, "kvAppend headDim");
  if (past + tokens > capacity) {
    throw new RangeError(`kvAppend: ${past} + ${tokens} positions exceed capacity ${capacity}`);
  }
  need(x.src, batch * tokens * heads * headDim, "kvAppend src");
  need(x.cache, batch * heads * capacity * headDim, "kvAppend cache");
  const s = headStrides(x.layout ?? "bthd", tokens, heads, headDim);
  const p = new ParamWriter().u32(batch).u32(tokens).u32(heads).u32(headDim).u32(past)
    .u32(s.sb).u32(s.st).u32(s.sh)
    .u32(heads * capacity * headDim).u32(capacity * headDim).u32(headDim);
  const total = batch * tokens * heads * headDim;
  await r.dispatch("kv_append", [x.src, x.cache], p, grid(Math.ceil(total / 256)));
}

/** Arguments of `attention` over a KV cache holding past + tokens positions. */
export interface AttentionArgs {
  /** Queries [batch, tokens, heads, headDim] in `layout`. */
  readonly q: GpuTensor;
  /** Key cache [batch, kvHeads, capacity, headDim]. */
  readonly k: GpuTensor;
  /** Value cache, same layout as k. */
  readonly v: GpuTensor;
  /** Output, same layout and size as q. */
  readonly out: GpuTensor;
  /** Optional additive key mask [batch, maskStride] (0 or -1e30 / -Infinity). */
  readonly mask?: GpuTensor;
  /** Row stride of the mask (default capacity). */
  readonly maskStride?: number;
  /** Batch rows. */
  readonly batch: number;
  /** Query heads. */
  readonly heads: number;
  /** Key/value heads (divides heads: GQA / MQA). */
  readonly kvHeads: number;
  /** New tokens (queries) per row. */
  readonly tokens: number;
  /** Head size (<= 256). */
  readonly headDim: number;
  /** Positions before the new tokens; the cache holds past + tokens valid keys. */
  readonly past: number;
  /** Cache capacity in positions. */
  readonly capacity: number;
  /** Score scale (e.g. headDim^-0.5, or query_pre_attn_scalar^-0.5). */
  readonly scale: number;
  /** Soft-cap c: s = tanh(s/c)*c after scaling (0 = none). */
  readonly softcap?: number;
  /** Causal among the new tokens (default false: prefix-LM, full attention). */
  readonly causal?: boolean;
  /** Sliding window in positions (0 = none): key j is skipped when past + t - j >= window. */
  readonly window?: number;
  /** Element order of q and out (default "bthd"). */
  readonly layout?: HeadLayout;
}

/** Largest head size the attention kernel takes. */
export const ATTENTION_MAX_HEAD_DIM = 256;

/** Records softmax(cap(q·kᵀ·scale) + mask)·v for every query row, GQA-aware. */
export async function attention(r: GpuRunner, x: AttentionArgs): Promise<void> {
  const { batch, heads, kvHeads, tokens, headDim, past, capacity } = x;
  positive(batch, "attention batch");
  positive(heads, "attention heads");
  positive(kvHeads, "attention kvHeads");
  positive(tokens, "attention tokens");
  positive(headDim, "attention headDim");
  if (heads % kvHeads !== 0) {
    throw new RangeError(`attention: ${heads} query heads not a multiple of ${kvHeads} kv heads`);
  }
  if (headDim > ATTENTION_MAX_HEAD_DIM) {
    throw new RangeError(`attention: headDim ${headDim} > ${ATTENTION_MAX_HEAD_DIM}`);
  }
  if (past + tokens > capacity) {
    throw new RangeError(`attention: ${past} + ${tokens} positions exceed capacity ${capacity}`);
  }
  const qn = batch * tokens * heads * headDim;
  need(x.q, qn, "attention q");
  need(x.out, qn, "attention out");
  need(x.k, batch * kvHeads * capacity * headDim, "attention k");
  need(x.v, batch * kvHeads * capacity * headDim, "attention v");
  const maskStride = x.maskStride ?? capacity;
  if (x.mask) need(x.mask, (batch - 1) * maskStride + past + tokens, "attention mask");
  const s = headStrides(x.layout ?? "bthd", tokens, heads, headDim);
  const p = new ParamWriter()
    .u32(batch).u32(heads).u32(kvHeads).u32(tokens).u32(headDim).u32(past)
    .u32(x.causal ? 1 : 0).u32(x.window ?? 0).u32(x.mask ? 1 : 0).u32(maskStride)
    .u32(s.sb).u32(s.sh).u32(s.st)
    .u32(kvHeads * capacity * headDim).u32(capacity * headDim).u32(headDim)
    .u32(s.sb).u32(s.sh).u32(s.st)
    .f32(x.scale).f32(x.softcap ?? 0);
  const buffers = [x.q, x.k, x.v, x.mask ?? r.dummy, x.out];
  await r.dispatch("attention", buffers, p, grid(batch * heads * tokens));
}

/** Arguments of `add`: out[i] = a[i] + b[i % nb]. */
export interface AddArgs {
  /** [n] input. */
  readonly a: GpuTensor;
  /** [nb] input, repeated over a. */
  readonly b: GpuTensor;
  /** [n] output (not a or b). */
  readonly out: GpuTensor;
  /** Elements of a. */
  readonly n: number;
  /** Elements of b (default n; must divide n). */
  readonly nb?: number;
}

/** Records a residual (or broadcast) add. */
export async function add(r: GpuRunner, x: AddArgs): Promise<void> {
  const nb = x.nb ?? x.n;
  positive(x.n, "add n");
  positive(nb, "add nb");
  if (x.n % nb !== 0) throw new RangeError(`add: nb ${nb} does not divide n ${x.n}`);
  need(x.a, x.n, "add a");
  need(x.b, nb, "add b");
  need(x.out, x.n, "add out");
  const p = new ParamWriter().u32(x.n).u32(nb);
  await r.dispatch("add", [x.a, x.b, x.out], p, grid(Math.ceil(x.n / 256)));
}

/** Arguments of `scale`: out = x * s. */
export interface ScaleArgs extends UnaryArgs {
  /** The factor. */
  readonly s: number;
}

/** Records out = x * s. */
export async function scale(r: GpuRunner, x: ScaleArgs): Promise<void> {
  positive(x.n, "scale n");
  need(x.x, x.n, "scale x");
  need(x.out, x.n, "scale out");
  const p = new ParamWriter().u32(x.n).f32(x.s);
  await r.dispatch("scale", [x.x, x.out], p, grid(Math.ceil(x.n / 256)));
}

/** Arguments of `embedding`: out[r, :] = table[ids[r], :] * scale. */
export interface EmbeddingArgs {
  /** [vocab, dim] table. */
  readonly table: GpuTensor;
  /** u32 (or non-negative i32) [rows] ids. */
  readonly ids: GpuTensor;
  /** [rows, dim] output. */
  readonly out: GpuTensor;
  /** Ids. */
  readonly rows: number;
  /** Row width. */
  readonly dim: number;
  /** Table rows; larger ids give zero rows. */
  readonly vocab: number;
  /** Factor applied to each row (default 1; Gemma uses sqrt(hidden)). */
  readonly scale?: number;
}

/** Records an embedding gather. */
export async function embedding(r: GpuRunner, x: EmbeddingArgs): Promise<void> {
  positive(x.rows, "embedding rows");
  positive(x.dim, "embedding dim");
  positive(x.vocab, "embedding vocab");
  need(x.table, x.vocab * x.dim, "embedding table");
  need(x.ids, x.rows, "embedding ids");
  need(x.out, x.rows * x.dim, "embedding out");
  const p = new ParamWriter().u32(x.rows).u32(x.dim).u32(x.vocab).f32(x.scale ?? 1);
  await r.dispatch(
    "embedding",
    [x.table, x.ids, x.out],
    p,
    grid(Math.ceil((x.rows * x.dim) / 256)),
  );
}

/** Arguments of `argmax` over each row. */
export interface ArgmaxArgs {
  /** [rows, n] values. */
  readonly x: GpuTensor;
  /** u32 [rows] output: first index of the row maximum. */
  readonly out: GpuTensor;
  /** Rows. */
  readonly rows: number;
  /** Row width. */
  readonly n: number;
}

/** Records a per-row argmax (ties go to the smallest index). */
export async function argmax(r: GpuRunner, x: ArgmaxArgs): Promise<void> {
  positive(x.rows, "argmax rows");
  positive(x.n, "argmax n");
  need(x.x, x.rows * x.n, "argmax x");
  need(x.out, x.rows, "argmax out");
  const p = new ParamWriter().u32(x.rows).u32(x.n);
  await r.dispatch("argmax", [x.x, x.out], p, grid(x.rows));
}

/** Shared arguments of the NHWC convolutions. */
export interface ConvArgs {
  /** [batch, height, width, cin] input. */
  readonly x: GpuTensor;
  /** Kernel in PyTorch layout: Conv2d [cout, cin, k, k], ConvTranspose2d [cin, cout, k, k]. */
  readonly w: GpuTensor;
  /** [cout] bias. */
  readonly bias: GpuTensor;
  /** [batch, outHeight, outWidth, cout] output. */
  readonly out: GpuTensor;
  /** Images. */
  readonly batch: number;
  /** Input height. */
  readonly height: number;
  /** Input width. */
  readonly width: number;
  /** Input channels. */
  readonly cin: number;
  /** Output channels. */
  readonly cout: number;
  /** Kernel size. */
  readonly k: number;
  /** Zero padding on each side. */
  readonly pad: number;
  /** Apply ReLU to the output. */
  readonly relu?: boolean;
}

/** Output height and width of a stride-1 convolution. */
export function conv2dOutSize(x: ConvArgs): [number, number] {
  return [x.height + 2 * x.pad - x.k + 1, x.width + 2 * x.pad - x.k + 1];
}

function checkConv(x: ConvArgs, name: string, oh: number, ow: number): void {
  for (const [v, what] of [[x.batch, "batch"], [x.height, "height"], [x.width, "width"]] as const) {
    positive(v, `${name} ${what}`);
  }
  positive(x.cin, `${name} cin`);
  positive(x.cout, `${name} cout`);
  positive(x.k, `${name} k`);
  if (oh < 1 || ow < 1) throw new RangeError(`${name}: empty output ${oh}×${ow}`);
  need(x.x, x.batch * x.height * x.width * x.cin, `${name} x`);
  need(x.w, x.cout * x.cin * x.k * x.k, `${name} w`);
  need(x.bias, x.cout, `${name} bias`);
  need(x.out, x.batch * oh * ow * x.cout, `${name} out`);
}

/** Records a stride-1 NHWC convolution (3×3 pad 1, 1×1 pad 0, ...), optionally with ReLU. */
export async function conv2d(r: GpuRunner, x: ConvArgs): Promise<void> {
  const [oh, ow] = conv2dOutSize(x);
  checkConv(x, "conv2d", oh, ow);
  const p = new ParamWriter().u32(x.batch).u32(x.height).u32(x.width).u32(x.cin).u32(x.cout)
    .u32(x.k).u32(x.pad).u32(x.relu ? 1 : 0).u32(oh).u32(ow);
  const total = x.batch * oh * ow * x.cout;
  await r.dispatch("conv2d", [x.x, x.w, x.bias, x.out], p, grid(Math.ceil(total / 256)));
}

/** Arguments of `convTranspose`. */
export interface ConvTransposeArgs extends ConvArgs {
  /** Stride (2 in the VQ-VAE decoder). */
  readonly stride: number;
}

/** Output height and width of a transposed convolution. */
export function convTransposeOutSize(x: ConvTransposeArgs): [number, number] {
  return [(x.height - 1) * x.stride - 2 * x.pad + x.k, (x.width - 1) * x.stride - 2 * x.pad + x.k];
}

/** Records an NHWC ConvTranspose2d (PyTorch semantics; 4×4 stride 2 pad 1 doubles H and W). */
export async function convTranspose(r: GpuRunner, x: ConvTransposeArgs): Promise<void> {
  positive(x.stride, "convTranspose stride");
  const [oh, ow] = convTransposeOutSize(x);
  checkConv(x, "convTranspose", oh, ow);
  const p = new ParamWriter().u32(x.batch).u32(x.height).u32(x.width).u32(x.cin).u32(x.cout)
    .u32(x.k).u32(x.stride).u32(x.pad).u32(x.relu ? 1 : 0).u32(oh).u32(ow);
  const total = x.batch * oh * ow * x.cout;
  await r.dispatch("conv_transpose", [x.x, x.w, x.bias, x.out], p, grid(Math.ceil(total / 256)));
}
