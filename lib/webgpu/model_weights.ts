/**
 * PaliGemma's weights on a WebGPU device, uploaded from a checkpoint's canonical tensors
 * (lib/convert/source.ts: HF folder or big_vision `.npz`, any stored dtype, read as float32).
 * Every tensor is checked against the adapter's buffer limits before anything is uploaded.
 * @module
 */

import { type ConvertSource, readF32 } from "../convert/source.ts";
import { numel } from "../checkpoint/tensor.ts";
import { InputError } from "../errors.ts";
import { isTied, type PaliGemmaConfig } from "../model/config.ts";
import { LM_HEAD, PROJECTOR_PREFIX, TEXT_PREFIX, VISION_PREFIX } from "../model/names.ts";
import type { GpuRunner, GpuTensor } from "./runner.ts";

/** One SigLIP encoder layer. */
export interface VisionLayerWeights {
  readonly ln1w: GpuTensor;
  readonly ln1b: GpuTensor;
  readonly qw: GpuTensor;
  readonly qb: GpuTensor;
  readonly kw: GpuTensor;
  readonly kb: GpuTensor;
  readonly vw: GpuTensor;
  readonly vb: GpuTensor;
  readonly ow: GpuTensor;
  readonly ob: GpuTensor;
  readonly ln2w: GpuTensor;
  readonly ln2b: GpuTensor;
  readonly fc1w: GpuTensor;
  readonly fc1b: GpuTensor;
  readonly fc2w: GpuTensor;
  readonly fc2b: GpuTensor;
}

/** One Gemma decoder layer (gate and up fused into one [2·I, D] matrix). */
export interface TextLayerWeights {
  readonly inputNorm: GpuTensor;
  readonly qw: GpuTensor;
  readonly kw: GpuTensor;
  readonly vw: GpuTensor;
  readonly ow: GpuTensor;
  /** Gemma 2 only: the norm after attention. */
  readonly postAttnNorm: GpuTensor | null;
  /** Gemma: post_attention_layernorm; Gemma 2: pre_feedforward_layernorm. */
  readonly mlpNorm: GpuTensor;
  readonly gateUp: GpuTensor;
  readonly down: GpuTensor;
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
  readonly projW: GpuTensor;
  readonly projB: GpuTensor;
  /** [V, D] token embeddings. */
  readonly embed: GpuTensor;
  readonly text: readonly TextLayerWeights[];
  readonly finalNorm: GpuTensor;
  /** [V, D] LM head (the embedding table when tied). */
  readonly lmHead: GpuTensor;
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

/** Canonical names and shapes of every tensor the device holds, checked before uploading. */
function plannedTensors(cfg: PaliGemmaConfig): [string, number][] {
  const v = cfg.vision;
  const t = cfg.text;
  const out: [string, number][] = [];
  const vocab = t.vocabSize * t.hiddenSize;
  out.push([`${TEXT_PREFIX}embed_tokens.weight`, vocab]);
  if (!isTied(cfg)) out.push([LM_HEAD, vocab]);
  out.push([`${VISION_PREFIX}encoder.layers.0.mlp.fc1.weight`, v.intermediateSize * v.hiddenSize]);
  out.push([
    `${TEXT_PREFIX}layers.0.mlp.gate_proj.weight + up_proj.weight`,
    2 * t.intermediateSize * t.hiddenSize,
  ]);
  out.push([`${PROJECTOR_PREFIX}linear.weight`, cfg.projectionDim * v.hiddenSize]);
  return out;
}

/** Checks that the largest tensors fit the adapter's limits (before any upload). */
export function checkModelFits(cfg: PaliGemmaConfig, limits: BufferLimits): void {
  for (const [name, n] of plannedTensors(cfg)) checkFits(name, n * 4, limits);
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
  const dv = v.hiddenSize;
  const patch = v.patchSize;
  const V = VISION_PREFIX;
  const vision: VisionLayerWeights[] = [];
  for (let i = 0; i < v.numLayers; i++) {
    const p = `${V}encoder.layers.${i}.`;
    vision.push({
      ln1w: await up(`${p}layer_norm1.weight`, [dv]),
      ln1b: await up(`${p}layer_norm1.bias`, [dv]),
      qw: await up(`${p}self_attn.q_proj.weight`, [dv, dv]),
      qb: await up(`${p}self_attn.q_proj.bias`, [dv]),
      kw: await up(`${p}self_attn.k_proj.weight`, [dv, dv]),
      kb: await up(`${p}self_attn.k_proj.bias`, [dv]),
      vw: await up(`${p}self_attn.v_proj.weight`, [dv, dv]),
      vb: await up(`${p}self_attn.v_proj.bias`, [dv]),
      ow: await up(`${p}self_attn.out_proj.weight`, [dv, dv]),
      ob: await up(`${p}self_attn.out_proj.bias`, [dv]),
      ln2w: await up(`${p}layer_norm2.weight`, [dv]),
      ln2b: await up(`${p}layer_norm2.bias`, [dv]),
      fc1w: await up(`${p}mlp.fc1.weight`, [v.intermediateSize, dv]),
      fc1b: await up(`${p}mlp.fc1.bias`, [v.intermediateSize]),
      fc2w: await up(`${p}mlp.fc2.weight`, [dv, v.intermediateSize]),
      fc2b: await up(`${p}mlp.fc2.bias`, [dv]),
    });
  }
  const d = t.hiddenSize;
  const hd = t.headDim;
  const g2 = t.variant === "gemma2";
  const text: TextLayerWeights[] = [];
  for (let i = 0; i < t.numLayers; i++) {
    const p = `${TEXT_PREFIX}layers.${i}.`;
    const inter = t.intermediateSize;
    checkFits(`${p}mlp.gate_proj+up_proj`, 2 * inter * d * 4, limits);
    const gu = new Float32Array(2 * inter * d);
    gu.set((await readF32(src, `${p}mlp.gate_proj.weight`, [inter, d])).data, 0);
    gu.set((await readF32(src, `${p}mlp.up_proj.weight`, [inter, d])).data, inter * d);
    bytes += gu.byteLength;
    text.push({
      inputNorm: await up(`${p}input_layernorm.weight`, [d]),
      qw: await up(`${p}self_attn.q_proj.weight`, [t.numHeads * hd, d]),
      kw: await up(`${p}self_attn.k_proj.weight`, [t.numKvHeads * hd, d]),
      vw: await up(`${p}self_attn.v_proj.weight`, [t.numKvHeads * hd, d]),
      ow: await up(`${p}self_attn.o_proj.weight`, [d, t.numHeads * hd]),
      postAttnNorm: g2 ? await up(`${p}post_attention_layernorm.weight`, [d]) : null,
      mlpNorm: await up(
        g2 ? `${p}pre_feedforward_layernorm.weight` : `${p}post_attention_layernorm.weight`,
        [d],
      ),
      gateUp: r.tensor(gu, `${p}mlp.gate_up`),
      down: await up(`${p}mlp.down_proj.weight`, [d, inter]),
      postMlpNorm: g2 ? await up(`${p}post_feedforward_layernorm.weight`, [d]) : null,
    });
  }
  const embed = await up(`${TEXT_PREFIX}embed_tokens.weight`, [t.vocabSize, d]);
  const lmHead = isTied(cfg) ? embed : await up(LM_HEAD, [t.vocabSize, d]);
  const grid = Math.floor(v.imageSize / patch);
  return {
    patchW: await up(`${V}embeddings.patch_embedding.weight`, [dv, 3, patch, patch]),
    patchB: await up(`${V}embeddings.patch_embedding.bias`, [dv]),
    posEmb: await up(`${V}embeddings.position_embedding.weight`, [grid * grid, dv]),
    vision,
    postLnW: await up(`${V}post_layernorm.weight`, [dv]),
    postLnB: await up(`${V}post_layernorm.bias`, [dv]),
    projW: await up(`${PROJECTOR_PREFIX}linear.weight`, [cfg.projectionDim, dv]),
    projB: await up(`${PROJECTOR_PREFIX}linear.bias`, [cfg.projectionDim]),
    embed,
    text,
    finalNorm: await up(`${TEXT_PREFIX}norm.weight`, [d]),
    lmHead,
    bytes,
  };
}
