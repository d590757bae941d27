/**
 * PaliGemma's weights on a WebGPU device, uploaded from a checkpoint's canonical tensors
 * (lib/convert/source.ts: HF folder, big_vision `.npz` or a converted folder's initializers) in
 * their stored precision: Linear weights stored as F16 or BF16 go up as f16 (BF16 rounded to
 * f16, kept f32 when a value is beyond f16's range), a converted folder's fp16 weights (and its
 * float32 weights that are f16 values exactly) as f16 and its q8/q4 MatMulNBits blocks as they
 * are (lib/webgpu/weights.ts), everything else as f32.
 * Weight matrices larger than the adapter's binding limits are split into chunks of whole rows
 * (`Matrix`), each in its own buffer, so a large vocabulary's table fits adapters whose
 * `maxStorageBufferBindingSize` is below its size; a model is refused (naming the tensor and the
 * limit) only when one row, or a tensor that cannot be split, does not fit.
 * @module
 */

import { type ConvertSource, readF32, tensorRef } from "../convert/source.ts";
import { fromFloat32, toFloat32 } from "../checkpoint/dtype.ts";
import { numel } from "../checkpoint/tensor.ts";
import type { OnnxWeightsSource, StoredMatrix } from "../backend/onnx_weights.ts";
import { InputError } from "../errors.ts";
import { isTied, type PaliGemmaConfig } from "../model/config.ts";
import { LM_HEAD, PROJECTOR_PREFIX, TEXT_PREFIX, VISION_PREFIX } from "../model/names.ts";
import type { GpuRunner, GpuTensor } from "./runner.ts";
import {
  f16Weight,
  f32Weight,
  type GpuWeight,
  type GpuWeightFormat,
  quantWeight,
} from "./weights.ts";

/** A Linear weight [n, k] on the host in the format it will have on the device. */
export type HostMatrix = { readonly format: "f32"; readonly values: Float32Array } | StoredMatrix;

/** Bytes of one row of `h` (k values), and of one row of its zero points. */
function hostRowBytes(h: HostMatrix, k: number): { row: number; zeros: number; scales: number } {
  if (h.format === "f32") return { row: 4 * k, zeros: 0, scales: 0 };
  if (h.format === "f16") return { row: 2 * k, zeros: 0, scales: 0 };
  const blocks = Math.ceil(k / h.blockSize);
  const row = (blocks * h.blockSize * (h.format === "q8" ? 8 : 4)) / 8;
  const zeros = h.zeros ? (h.zeroLayout === "nibbles" ? Math.ceil(blocks / 2) : blocks) : 0;
  return { row, zeros, scales: blocks };
}

/** Rows [row0, row0 + rows) of `h` uploaded as a GpuWeight. */
function uploadRows(
  r: GpuRunner,
  h: HostMatrix,
  k: number,
  row0: number,
  rows: number,
): GpuWeight {
  const b = hostRowBytes(h, k);
  if (h.format === "f32") {
    return f32Weight(r, h.values.subarray(row0 * k, (row0 + rows) * k), rows, k);
  }
  if (h.format === "f16") {
    return f16Weight(r, h.halves.subarray(row0 * b.row, (row0 + rows) * b.row), rows, k);
  }
  const q = {
    codes: h.codes.subarray(row0 * b.row, (row0 + rows) * b.row),
    scales: h.scales.subarray(row0 * b.scales, (row0 + rows) * b.scales),
    ...(h.zeros ? { zeros: h.zeros.subarray(row0 * b.zeros, (row0 + rows) * b.zeros) } : {}),
  };
  return quantWeight(r, q, rows, k, h.format === "q8" ? 8 : 4, h.blockSize, h.zeroLayout);
}

/** Whether `a` and `b` can be stacked row-wise into one matrix of the same format. */
function stackable(a: HostMatrix, b: HostMatrix): boolean {
  if (a.format !== b.format) return false;
  if (a.format === "f32" || a.format === "f16") return true;
  const q = b as typeof a;
  return a.blockSize === q.blockSize && a.zeroLayout === q.zeroLayout &&
    (a.zeros === undefined) === (q.zeros === undefined);
}

function cat<T extends Uint8Array | Float32Array>(a: T, b: T): T {
  const out = new (a.constructor as new (n: number) => T)(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** `a` over `b` (rows stacked; `stackable` first). */
function stack(a: HostMatrix, b: HostMatrix): HostMatrix {
  if (a.format === "f32") return { format: "f32", values: cat(a.values, (b as typeof a).values) };
  if (a.format === "f16") return { format: "f16", halves: cat(a.halves, (b as typeof a).halves) };
  const q = b as typeof a;
  return {
    ...a,
    codes: cat(a.codes, q.codes),
    scales: cat(a.scales, q.scales),
    ...(a.zeros && q.zeros ? { zeros: cat(a.zeros, q.zeros) } : {}),
  };
}

/** Largest magnitude f16 holds. */
const F16_MAX = 65504;

/**
 * The Linear weight `name` [n, k] of `src` in its device format: a converted folder's stored
 * f16 / q8 / q4 form, f16 for F16 / BF16 checkpoint tensors (even k, values within f16's
 * range), else f32.
 */
export async function hostMatrix(
  src: ConvertSource,
  name: string,
  n: number,
  k: number,
): Promise<HostMatrix> {
  const matrices = (src as Partial<OnnxWeightsSource>).storedMatrices;
  const stored = matrices?.get(name)?.();
  if (stored && (stored.format !== "f16" || k % 2 === 0)) return stored;
  const ref = tensorRef(src, name, [n, k]);
  const values = toFloat32(await ref.read(), ref.dtype);
  // A converted folder's float32 weights that hold f16 values exactly (the q8/q4 folders'
  // "fp16-as-fp32" vision tower) go up as f16: the same values at half the memory.
  if (matrices && k % 2 === 0) {
    const halves = fromFloat32(values, "F16");
    const back = toFloat32(halves, "F16");
    if (back.every((x, i) => x === values[i])) return { format: "f16", halves };
  }
  if ((ref.dtype === "F16" || ref.dtype === "BF16") && k % 2 === 0) {
    let most = 0;
    for (let i = 0; i < values.length; i++) most = Math.max(most, Math.abs(values[i]));
    if (most <= F16_MAX) return { format: "f16", halves: fromFloat32(values, "F16") };
  }
  return { format: "f32", values };
}

/** Rows [row0, row0 + rows) of a matrix, and of its bias when it has one. */
export interface MatrixChunk {
  readonly w: GpuWeight;
  readonly bias?: GpuTensor;
  readonly row0: number;
  readonly rows: number;
}

/** An [n, k] weight (HF Linear [out, in]) in one or more row chunks. */
export interface Matrix {
  readonly n: number;
  readonly k: number;
  readonly chunks: readonly MatrixChunk[];
}

/** One SigLIP encoder layer (biases are in the matrices). */
export interface VisionLayerWeights {
  readonly ln1w: GpuTensor;
  readonly ln1b: GpuTensor;
  readonly qw: Matrix;
  readonly kw: Matrix;
  readonly vw: Matrix;
  readonly ow: Matrix;
  readonly ln2w: GpuTensor;
  readonly ln2b: GpuTensor;
  readonly fc1w: Matrix;
  readonly fc2w: Matrix;
}

/** One Gemma decoder layer (gate and up fused into one [2·I, D] matrix). */
export interface TextLayerWeights {
  readonly inputNorm: GpuTensor;
  readonly qw: Matrix;
  readonly kw: Matrix;
  readonly vw: Matrix;
  readonly ow: Matrix;
  /** Gemma 2 only: the norm after attention. */
  readonly postAttnNorm: GpuTensor | null;
  /** Gemma: post_attention_layernorm; Gemma 2: pre_feedforward_layernorm. */
  readonly mlpNorm: GpuTensor;
  readonly gateUp: Matrix;
  readonly down: Matrix;
  /** Gemma 2 only: the norm after the MLP. */
  readonly postMlpNorm: GpuTensor | null;
}

/** All of the model's weights on the device. */
export interface ModelWeights {
  /** Patch embedding as a Linear [hidden, 3·p·p] over (channel, y, x) patches, bias included. */
  readonly patch: Matrix;
  readonly posEmb: GpuTensor;
  readonly vision: readonly VisionLayerWeights[];
  readonly postLnW: GpuTensor;
  readonly postLnB: GpuTensor;
  /** Projector, bias included. */
  readonly proj: Matrix;
  /** [V, D] token embeddings. */
  readonly embed: Matrix;
  readonly text: readonly TextLayerWeights[];
  readonly finalNorm: GpuTensor;
  /** [V, D] LM head (the embedding table when tied). */
  readonly lmHead: Matrix;
  /** Bytes uploaded. */
  readonly bytes: number;
  /** Storage formats of the Linear weights, with how many matrices use each. */
  readonly formats: ReadonlyMap<GpuWeightFormat, number>;
}

/** Buffer limits of the device that every weight must fit. */
export interface BufferLimits {
  readonly maxBufferSize: number;
  readonly maxStorageBufferBindingSize: number;
}

/** Throws InputError naming the tensor and the limit when `bytes` does not fit one binding. */
export function checkFits(what: string, bytes: number, limits: BufferLimits): void {
  for (const k of ["maxStorageBufferBindingSize", "maxBufferSize"] as const) {
    if (bytes > limits[k]) {
      const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
      throw new InputError(
        `WebGPU: the model does not fit the adapter: ${what} needs ${mb(bytes)} in one buffer, ` +
          `over the adapter's ${k} of ${mb(limits[k])}`,
      );
    }
  }
}

/** Rows of `rowBytes` bytes (default: `k` floats) a chunk may hold under `limits`. */
export function rowsPerChunk(k: number, limits: BufferLimits, rowBytes = 4 * k): number {
  const most = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  return Math.floor(most / rowBytes);
}

/**
 * Checks, before any upload, that every matrix's rows and every tensor that cannot be split fit
 * the adapter's limits.
 */
export function checkModelFits(cfg: PaliGemmaConfig, limits: BufferLimits): void {
  const v = cfg.vision;
  const t = cfg.text;
  const grid = Math.floor(v.imageSize / v.patchSize);
  const rowOf: [string, number][] = [
    [`${TEXT_PREFIX}embed_tokens.weight`, t.hiddenSize],
    [`${VISION_PREFIX}encoder.layers.0.mlp.fc2.weight`, v.intermediateSize],
    [`${TEXT_PREFIX}layers.0.mlp.down_proj.weight`, t.intermediateSize],
    [`${TEXT_PREFIX}layers.0.self_attn.o_proj.weight`, t.numHeads * t.headDim],
  ];
  for (const [name, k] of rowOf) checkFits(`one row of ${name}`, k * 4, limits);
  checkFits(
    `${VISION_PREFIX}embeddings.position_embedding.weight`,
    grid * grid * v.hiddenSize * 4,
    limits,
  );
  checkFits(
    `one row of ${VISION_PREFIX}embeddings.patch_embedding.weight`,
    3 * v.patchSize ** 2 * 4,
    limits,
  );
}

/** Uploads every weight of `src` to the runner's device (see the module doc for the formats). */
export async function uploadWeights(
  r: GpuRunner,
  src: ConvertSource,
  limits: BufferLimits,
): Promise<ModelWeights> {
  const cfg = src.config;
  const v = cfg.vision;
  const t = cfg.text;
  checkModelFits(cfg, limits);
  let bytes = 0;
  const up = async (name: string, shape: readonly number[]): Promise<GpuTensor> => {
    checkFits(name, numel(shape) * 4, limits);
    const { data } = await readF32(src, name, shape);
    bytes += data.byteLength;
    return r.tensor(data, name);
  };
  const formats = new Map<GpuWeightFormat, number>();
  /** Uploads a [n, k] matrix (and an [n] bias) in row chunks that fit the limits. */
  const split = (name: string, h: HostMatrix, n: number, k: number, b?: Float32Array): Matrix => {
    const rb = hostRowBytes(h, k);
    checkFits(`one row of ${name}`, rb.row, limits);
    const step = Math.max(1, rowsPerChunk(k, limits, rb.row));
    const chunks: MatrixChunk[] = [];
    for (let row0 = 0; row0 < n; row0 += step) {
      const rows = Math.min(step, n - row0);
      chunks.push({
        w: uploadRows(r, h, k, row0, rows),
        ...(b ? { bias: r.tensor(b.subarray(row0, row0 + rows), `${name}.bias`) } : {}),
        row0,
        rows,
      });
    }
    bytes += n * (rb.row + rb.zeros + 4 * rb.scales) + (b?.byteLength ?? 0);
    formats.set(h.format, (formats.get(h.format) ?? 0) + 1);
    return { n, k, chunks };
  };
  /** The Linear `name` (`.weight` [n, k], and `.bias` [n] when `withBias`). */
  const mat = async (name: string, n: number, k: number, withBias = false): Promise<Matrix> => {
    const w = await hostMatrix(src, `${name}.weight`, n, k);
    const b = withBias ? (await readF32(src, `${name}.bias`, [n])).data : undefined;
    return split(name, w, n, k, b);
  };
  const dv = v.hiddenSize;
  const patch = v.patchSize;
  const V = VISION_PREFIX;
  const vision: VisionLayerWeights[] = [];
  for (let i = 0; i < v.numLayers; i++) {
    const p = `${V}encoder.layers.${i}.`;
    vision.push({
      ln1w: await up(`${p}layer_norm1.weight`, [dv]),
      ln1b: await up(`${p}layer_norm1.bias`, [dv]),
      qw: await mat(`${p}self_attn.q_proj`, dv, dv, true),
      kw: await mat(`${p}self_attn.k_proj`, dv, dv, true),
      vw: await mat(`${p}self_attn.v_proj`, dv, dv, true),
      ow: await mat(`${p}self_attn.out_proj`, dv, dv, true),
      ln2w: await up(`${p}layer_norm2.weight`, [dv]),
      ln2b: await up(`${p}layer_norm2.bias`, [dv]),
      fc1w: await mat(`${p}mlp.fc1`, v.intermediateSize, dv, true),
      fc2w: await mat(`${p}mlp.fc2`, dv, v.intermediateSize, true),
    });
  }
  const d = t.hiddenSize;
  const hd = t.headDim;
  const g2 = t.variant === "gemma2";
  const text: TextLayerWeights[] = [];
  for (let i = 0; i < t.numLayers; i++) {
    const p = `${TEXT_PREFIX}layers.${i}.`;
    const inter = t.intermediateSize;
    // Gate over up: one GEMV computes both (its GLU epilogue) in whatever format they share.
    const gate = await hostMatrix(src, `${p}mlp.gate_proj.weight`, inter, d);
    const upm = await hostMatrix(src, `${p}mlp.up_proj.weight`, inter, d);
    const f32 = async (name: string) => (await readF32(src, name, [inter, d])).data;
    const gu: HostMatrix = stackable(gate, upm) ? stack(gate, upm) : {
      format: "f32",
      values: cat(await f32(`${p}mlp.gate_proj.weight`), await f32(`${p}mlp.up_proj.weight`)),
    };
    text.push({
      inputNorm: await up(`${p}input_layernorm.weight`, [d]),
      qw: await mat(`${p}self_attn.q_proj`, t.numHeads * hd, d),
      kw: await mat(`${p}self_attn.k_proj`, t.numKvHeads * hd, d),
      vw: await mat(`${p}self_attn.v_proj`, t.numKvHeads * hd, d),
      ow: await mat(`${p}self_attn.o_proj`, d, t.numHeads * hd),
      postAttnNorm: g2 ? await up(`${p}post_attention_layernorm.weight`, [d]) : null,
      mlpNorm: await up(
        g2 ? `${p}pre_feedforward_layernorm.weight` : `${p}post_attention_layernorm.weight`,
        [d],
      ),
      gateUp: split(`${p}mlp.gate_up`, gu, 2 * inter, d),
      down: await mat(`${p}mlp.down_proj`, d, inter),
      postMlpNorm: g2 ? await up(`${p}post_feedforward_layernorm.weight`, [d]) : null,
    });
  }
  const embed = await mat(`${TEXT_PREFIX}embed_tokens`, t.vocabSize, d);
  const lmHead = isTied(cfg) ? embed : await mat(LM_HEAD.replace(/\.weight$/, ""), t.vocabSize, d);
  const grid = Math.floor(v.imageSize / patch);
  return {
    patch: split(
      `${V}embeddings.patch_embedding`,
      await hostMatrix(src, `${V}embeddings.patch_embedding.weight`, dv, 3 * patch * patch),
      dv,
      3 * patch * patch,
      (await readF32(src, `${V}embeddings.patch_embedding.bias`, [dv])).data,
    ),
    posEmb: await up(`${V}embeddings.position_embedding.weight`, [grid * grid, dv]),
    vision,
    postLnW: await up(`${V}post_layernorm.weight`, [dv]),
    postLnB: await up(`${V}post_layernorm.bias`, [dv]),
    proj: await mat(`${PROJECTOR_PREFIX}linear`, cfg.projectionDim, dv, true),
    embed,
    text,
    finalNorm: await up(`${TEXT_PREFIX}norm.weight`, [d]),
    lmHead,
    bytes,
    formats,
  };
}
