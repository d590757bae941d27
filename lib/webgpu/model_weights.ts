/**
 * PaliGemma's weights on a WebGPU device, uploaded from a checkpoint's canonical tensors
 * (lib/convert/source.ts: HF folder or big_vision `.npz`, any stored dtype, read as float32).
 * Weight matrices larger than the adapter's binding limits are split into chunks of whole rows
 * (`Matrix`), each in its own buffer, so a large vocabulary's table fits adapters whose
 * `maxStorageBufferBindingSize` is below its size; a model is refused (naming the tensor and the
 * limit) only when one row, or a tensor that cannot be split, does not fit.
 * @module
 */

import { type ConvertSource, readF32 } from "../convert/source.ts";
import { numel } from "../checkpoint/tensor.ts";
import { InputError } from "../errors.ts";
import { isTied, type PaliGemmaConfig } from "../model/config.ts";
import { LM_HEAD, PROJECTOR_PREFIX, TEXT_PREFIX, VISION_PREFIX } from "../model/names.ts";
import type { GpuRunner, GpuTensor } from "./runner.ts";
import { f32Weight, type GpuWeight } from "./weights.ts";

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
  readonly patchW: GpuTensor;
  readonly patchB: GpuTensor;
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

/** Rows of `k` floats a chunk may hold under `limits`. */
export function rowsPerChunk(k: number, limits: BufferLimits): number {
  const most = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  return Math.floor(most / (k * 4));
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
    `${VISION_PREFIX}embeddings.patch_embedding.weight`,
    v.hiddenSize * 3 * v.patchSize ** 2 * 4,
    limits,
  );
}

/** Uploads every weight of `src` to the runner's device as float32. */
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
  const perChunk = (k: number) => Math.max(1, rowsPerChunk(k, limits));
  /** Uploads [n, k] values (and an [n] bias) in row chunks that fit the limits. */
  const split = (name: string, w: Float32Array, n: number, k: number, b?: Float32Array): Matrix => {
    checkFits(`one row of ${name}`, k * 4, limits);
    const step = perChunk(k);
    const chunks: MatrixChunk[] = [];
    for (let row0 = 0; row0 < n; row0 += step) {
      const rows = Math.min(step, n - row0);
      chunks.push({
        w: f32Weight(r, w.subarray(row0 * k, (row0 + rows) * k), rows, k),
        ...(b ? { bias: r.tensor(b.subarray(row0, row0 + rows), `${name}.bias`) } : {}),
        row0,
        rows,
      });
    }
    bytes += w.byteLength + (b?.byteLength ?? 0);
    return { n, k, chunks };
  };
  /** The Linear `name` (`.weight` [n, k], and `.bias` [n] when `withBias`). */
  const mat = async (name: string, n: number, k: number, withBias = false): Promise<Matrix> => {
    const w = (await readF32(src, `${name}.weight`, [n, k])).data;
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
    const gu = new Float32Array(2 * inter * d);
    gu.set((await readF32(src, `${p}mlp.gate_proj.weight`, [inter, d])).data, 0);
    gu.set((await readF32(src, `${p}mlp.up_proj.weight`, [inter, d])).data, inter * d);
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
    patchW: await up(`${V}embeddings.patch_embedding.weight`, [dv, 3, patch, patch]),
    patchB: await up(`${V}embeddings.patch_embedding.bias`, [dv]),
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
  };
}
