/**
 * Graph pieces shared by the three graphs: linear layers in each precision, norms and
 * activations, written through an `OnnxModelWriter`.
 * @module
 */

import { fromFloat32, toFloat32 } from "../checkpoint/dtype.ts";
import type { OnnxModelWriter } from "../onnx/builder.ts";
import { DataType } from "../onnx/proto.ts";
import {
  blockCount,
  packZeroPoints,
  type QuantBits,
  quantizeRows,
  type QuantScheme,
} from "./quantize.ts";
import type { F32Tensor } from "./source.ts";
import type { Precision } from "../model/precision.ts";
import { transpose2d as transposeWords } from "../checkpoint/transform.ts";

/** Weight precision of a converted model. */
export type { Precision };

/** Candidate exponents of the MLP input scaling (`QuantOptions.mlpInputScale`). */
export const MLP_INPUT_SCALE_ALPHAS: readonly number[] = [0, 0.25, 0.5, 0.75, 1];

/** Default block size of MatMulNBits and of quantised embeddings. */
export const QUANT_BLOCK = 32;

/**
 * How one group of linear layers is stored in q8 / q4: block-quantised, or kept as floats.
 * "fp16-as-fp32" rounds the weights to fp16 but stores them as fp32: the same values as "fp16"
 * (whose Cast ONNX Runtime folds into fp32 at every load, 3.4 s for the full-size vision tower),
 * at twice the file size and with nothing to fold.
 */
export type LayerStorage = QuantScheme | "fp16" | "fp16-as-fp32" | "fp32";

/** The groups of linear layers that q8 / q4 store separately. */
export type LinearRole = "vision" | "attention" | "mlp";

/** Quantisation settings of q8 / q4, one storage per group of weights. */
export interface QuantOptions {
  /** SigLIP's linear layers and the projector. */
  readonly vision: LayerStorage;
  /** The decoder's attention projections q, k, v, o. */
  readonly attention: LayerStorage;
  /** The decoder's MLP gate, up, down. */
  readonly mlp: LayerStorage;
  /** The token embedding table and the (tied) LM head. */
  readonly table: QuantScheme;
  /** MatMulNBits accuracy_level (4: int8 activations, the fast VNNI kernels; 0: float). */
  readonly accuracyLevel: number;
  /**
   * Op of the 8-bit linear layers: "nbits" (MatMulNBits with the group's blocks) or "dq8"
   * (DynamicQuantizeMatMul: 8-bit weights with one scale per output column, activations quantised
   * per tensor at run time). The LM head and the embedding table always use `table`.
   */
  readonly matmul?: "nbits" | "dq8";
  /**
   * Per-tensor exceptions (for experiments): the first pattern matching a linear layer's
   * checkpoint name gives its storage instead of its group's.
   */
  readonly overrides?: ReadonlyArray<readonly [RegExp, LayerStorage]>;
  /**
   * Activation-aware scaling of the MLP's inputs, without calibration data (see
   * input_scaling.ts): candidate exponents α, chosen per layer. Empty or absent: off.
   */
  readonly mlpInputScale?: readonly number[];
}

/** A precision with its quantisation settings. */
export interface WeightFormat {
  /** Weight precision (selects the file suffix). */
  readonly precision: Precision;
  /** q8 / q4 settings; absent for fp32 / fp16. */
  readonly quant?: QuantOptions;
}

/**
 * The shipped settings (BENCHMARKS.md has every variant measured), all with accuracy_level 4:
 * - vision encoder and projector rounded to fp16 and stored as fp32 ("fp16-as-fp32": they run as
 *   fp32 GEMMs, which on x86 are as fast as the 8-bit ones, and an fp16 Cast would be folded at
 *   every load); alone at 8 bits they gave most of q8's error on the fixtures;
 * - attention projections at 8 bits in blocks of 16 (about 7 % of the decoder's weights; the
 *   most sensitive decoder layers);
 * - MLP at `bits`: 8-bit symmetric blocks of 32, or 4-bit blocks of 32 with zero points over their
 *   min/max range (4-bit blocks of 16 are more accurate but ONNX Runtime's kernel for them is
 *   slower than the 8-bit one);
 * - embedding table and tied LM head at 8 bits, symmetric, blocks of 32;
 * - q4 only: the MLP's input channels scaled per layer by |1 + norm weight|^α (input_scaling.ts;
 *   at 8 bits the weights' rounding error is ~18x smaller and its effect on the fixtures is within
 *   their noise).
 */
export function defaultQuant(bits: QuantBits): QuantOptions {
  const scheme = (b: QuantBits, blockSize: number): QuantScheme => ({
    bits: b,
    blockSize,
    asymmetric: b === 4,
  });
  return {
    vision: "fp16-as-fp32",
    attention: scheme(8, 16),
    mlp: scheme(bits, QUANT_BLOCK),
    table: scheme(8, QUANT_BLOCK),
    accuracyLevel: 4,
    mlpInputScale: bits === 4 ? MLP_INPUT_SCALE_ALPHAS : [],
  };
}

/** The WeightFormat of `p`, with `quant` replacing parts of the default q8 / q4 settings. */
export function weightFormat(p: Precision, quant?: Partial<QuantOptions>): WeightFormat {
  const bits = quantBits(p);
  if (bits === null) return { precision: p };
  return { precision: p, quant: { ...defaultQuant(bits), ...quant } };
}

/** One line saying how `fmt` stores each group of weights (for progress output). */
export function describeFormat(fmt: WeightFormat): string {
  const q = fmt.quant;
  if (!q) return `${fmt.precision}: every weight ${fmt.precision === "fp16" ? "fp16" : "fp32"}`;
  const show = (s: LayerStorage) =>
    typeof s === "string"
      ? s
      : `${s.bits}-bit blocks of ${s.blockSize}${s.asymmetric ? " with zero points" : ""}`;
  const scaling = (q.mlpInputScale ?? []).length > 0 ? " (input scaling)" : "";
  const op = q.matmul === "dq8" ? ", 8-bit layers as DynamicQuantizeMatMul" : "";
  return `${fmt.precision}: vision ${show(q.vision)}, attention ${show(q.attention)}, MLP ${
    show(q.mlp)
  }${scaling}, table ${show(q.table)}, accuracy_level ${q.accuracyLevel}${op}` +
    (q.overrides?.length ? `, ${q.overrides.length} override(s)` : "");
}

/** The group a checkpoint tensor belongs to (null: not a linear layer of q8 / q4). */
export function linearRole(name: string): LinearRole | null {
  if (name.includes(".embeddings.")) return null;
  if (name.startsWith("vision_tower.") || name.startsWith("multi_modal_projector.")) {
    return name.endsWith(".weight") && !/norm/.test(name) ? "vision" : null;
  }
  if (!name.endsWith("_proj.weight")) return null;
  return name.includes(".self_attn.") ? "attention" : name.includes(".mlp.") ? "mlp" : null;
}

/** How the linear layer `name` of group `role` is stored under `fmt`. */
export function layerStorage(fmt: WeightFormat, role: LinearRole, name: string): LayerStorage {
  if (!fmt.quant) return fmt.precision === "fp16" ? "fp16" : "fp32";
  const hit = fmt.quant.overrides?.find(([pattern]) => pattern.test(name));
  return hit ? hit[1] : fmt.quant[role];
}

/** ONNX Runtime contrib-op domain. */
export const MS = "com.microsoft";

/** Little-endian bytes of a Float32Array (no copy). */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Transposes a row-major [rows, cols] matrix. */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length);
  transposeWords(bits(a), bits(out), rows, cols);
  return out;
}

/** Bits of a quantised precision, or null for float ones. */
export function quantBits(p: Precision): QuantBits | null {
  return p === "q8" ? 8 : p === "q4" ? 4 : null;
}

/** Writes a float tensor in float32 (always; for biases, norms, embeddings of position). */
export function f32Weight(g: OnnxModelWriter, name: string, t: F32Tensor): Promise<string> {
  return g.weight(name, DataType.FLOAT, t.shape, f32Bytes(t.data));
}

/**
 * `x @ w.T (+ bias)` for an HF Linear weight `w` [out, in] of group `role`, stored as `fmt` says:
 * MatMul on the transposed weight (fp32), the same with an fp16 weight cast up (fp16; ONNX
 * Runtime folds the cast at load), MatMulNBits, or DynamicQuantizeMatMul (`matmul: "dq8"`).
 */
export async function linear(
  g: OnnxModelWriter,
  x: string,
  name: string,
  w: F32Tensor,
  fmt: WeightFormat,
  role: LinearRole,
  bias?: F32Tensor,
): Promise<string> {
  const [n, k] = w.shape;
  const storage = layerStorage(fmt, role, name);
  let y: string;
  if (storage === "fp16" || storage === "fp16-as-fp32" || storage === "fp32") {
    const t = transpose2d(w.data, n, k);
    if (storage === "fp16") {
      const h = await g.weight(name, DataType.FLOAT16, [k, n], fromFloat32(t, "F16"));
      y = g.op("MatMul", [x, g.op("Cast", [h], { to: DataType.FLOAT })]);
    } else if (storage === "fp16-as-fp32") {
      const r = toFloat32(fromFloat32(t, "F16"), "F16");
      y = g.op("MatMul", [x, await g.weight(name, DataType.FLOAT, [k, n], f32Bytes(r))]);
    } else {
      y = g.op("MatMul", [x, await g.weight(name, DataType.FLOAT, [k, n], f32Bytes(t))]);
    }
  } else if (fmt.quant?.matmul === "dq8" && storage.bits === 8) {
    y = await dynamicQuantMatMul(g, x, name, w.data, n, k);
  } else {
    y = await matMulNBits(g, x, name, [w.data], n, k, storage, fmt.quant?.accuracyLevel ?? 4);
  }
  return bias ? g.op("Add", [y, await f32Weight(g, `${name}.bias`, bias)]) : y;
}

/**
 * 8-bit codes of HF weight rows `w` [n, k], transposed to [k, n], with one scale per row of `w`
 * (= output column): scale = max|row| / 127, code = 128 + round(x / scale) stored as uint8 with
 * zero point 128. Unsigned weights select ORT's u8·u8 kernels: with int8 weights the x86 u8·s8
 * kernels sum pairs of products in int16 (vpmaddubsw) and saturate (measured: ~25 % output
 * error at full range; 7-bit int8 weights avoid it but measured worse on the fixtures).
 */
const DQ_MAX = 127;

export function quantizeColumnsU8(
  w: Float32Array,
  n: number,
  k: number,
): { codes: Uint8Array; scales: Float32Array } {
  const scales = new Float32Array(n);
  const inv = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let m = 0;
    for (let c = 0; c < k; c++) m = Math.max(m, Math.abs(w[r * k + c]));
    scales[r] = Math.fround(m / DQ_MAX);
    inv[r] = scales[r] === 0 ? 0 : 1 / scales[r];
  }
  const codes = new Uint8Array(k * n);
  const tile = 64;
  for (let r0 = 0; r0 < n; r0 += tile) {
    for (let c0 = 0; c0 < k; c0 += tile) {
      const r1 = Math.min(n, r0 + tile);
      const c1 = Math.min(k, c0 + tile);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) {
          const q = Math.round(w[r * k + c] * inv[r]);
          codes[c * n + r] = 128 + (q < -DQ_MAX ? -DQ_MAX : q > DQ_MAX ? DQ_MAX : q);
        }
      }
    }
  }
  return { codes, scales };
}

/** `x @ w.T` for HF weight rows `w` [n, k] with DynamicQuantizeMatMul (see `quantizeColumnsU8`). */
export async function dynamicQuantMatMul(
  g: OnnxModelWriter,
  x: string,
  name: string,
  w: Float32Array,
  n: number,
  k: number,
): Promise<string> {
  const { codes, scales } = quantizeColumnsU8(w, n, k);
  const b = await g.weight(`${name}.u8`, DataType.UINT8, [k, n], codes);
  const s = await g.weight(`${name}.scales`, DataType.FLOAT, [n], f32Bytes(scales));
  const z = await g.weight(`${name}.zp`, DataType.UINT8, [n], new Uint8Array(n).fill(128));
  return g.op("DynamicQuantizeMatMul", [x, b, s, z], {}, MS);
}

/** MatMulNBits over weight rows [n, k] given as chunks of whole rows (streamed to the writer). */
export async function matMulNBits(
  g: OnnxModelWriter,
  x: string,
  name: string,
  rowChunks: Iterable<Float32Array> | AsyncIterable<Float32Array>,
  n: number,
  k: number,
  scheme: QuantScheme,
  accuracyLevel: number,
): Promise<string> {
  const { bits, blockSize } = scheme;
  const blocks = blockCount(k, blockSize);
  const blob = (blockSize * bits) / 8;
  const scales = new Float32Array(n * blocks);
  const zeros = scheme.asymmetric ? new Uint8Array(n * blocks) : null;
  let row = 0;
  async function* codes(): AsyncGenerator<Uint8Array> {
    for await (const chunk of rowChunks) {
      const rows = chunk.length / k;
      const q = quantizeRows(chunk, rows, k, scheme);
      scales.set(q.scales, row * blocks);
      if (zeros && q.zeros) zeros.set(q.zeros, row * blocks);
      row += rows;
      yield q.codes;
    }
  }
  const b = await g.weight(`${name}.q${bits}`, DataType.UINT8, [n, blocks, blob], codes());
  const s = await g.weight(`${name}.scales`, DataType.FLOAT, [n * blocks], f32Bytes(scales));
  const inputs = [x, b, s];
  if (zeros) {
    const packed = packZeroPoints(zeros, n, blocks, bits);
    inputs.push(await g.weight(`${name}.zero_points`, DataType.UINT8, [packed.length], packed));
  }
  return g.op("MatMulNBits", inputs, {
    K: k,
    N: n,
    bits,
    block_size: blockSize,
    accuracy_level: accuracyLevel,
  }, MS);
}

/**
 * Gemma RMSNorm `x * rsqrt(mean(x²) + eps) * (1 + w)`, with 1 + w folded into the scale and, when
 * given, divided by `divisor` per channel.
 */
export async function rmsNorm(
  g: OnnxModelWriter,
  x: string,
  name: string,
  w: F32Tensor,
  eps: number,
  divisor?: Float32Array,
): Promise<string> {
  const scale = new Float32Array(w.data.length);
  for (let i = 0; i < scale.length; i++) scale[i] = (1 + w.data[i]) / (divisor ? divisor[i] : 1);
  const s = await f32Weight(g, name, { shape: w.shape, data: scale });
  return g.op("SimplifiedLayerNormalization", [x, s], { axis: -1, epsilon: { f: eps } });
}

/** LayerNorm over the last axis with weight and bias. */
export async function layerNorm(
  g: OnnxModelWriter,
  x: string,
  name: string,
  w: F32Tensor,
  b: F32Tensor,
  eps: number,
): Promise<string> {
  const ws = await f32Weight(g, `${name}.weight`, w);
  const bs = await f32Weight(g, `${name}.bias`, b);
  return g.op("LayerNormalization", [x, ws, bs], { axis: -1, epsilon: { f: eps } });
}

/** GELU, tanh approximation (ONNX Runtime FastGelu). */
export function geluTanh(g: OnnxModelWriter, x: string): string {
  return g.op("FastGelu", [x], {}, MS);
}

/** `cap * tanh(x / cap)`. */
export function softcap(g: OnnxModelWriter, x: string, cap: number): string {
  const t = g.op("Tanh", [g.op("Div", [x, g.constF32([cap], [])])]);
  return g.op("Mul", [t, g.constF32([cap], [])]);
}
