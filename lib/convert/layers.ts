/**
 * Graph pieces shared by the three graphs: linear layers in each precision, norms and
 * activations, written through an `OnnxModelWriter`.
 * @module
 */

import { fromFloat32 } from "../checkpoint/dtype.ts";
import type { OnnxModelWriter } from "../onnx/builder.ts";
import { DataType } from "../onnx/proto.ts";
import { blockCount, type QuantBits, quantizeRows } from "./quantize.ts";
import type { F32Tensor } from "./source.ts";

/** Weight precision of a converted model. */
export type Precision = "fp32" | "fp16" | "q8" | "q4";

/** Block size of MatMulNBits and of quantised embeddings. */
export const QUANT_BLOCK = 32;

/** ONNX Runtime contrib-op domain. */
export const MS = "com.microsoft";

/** Little-endian bytes of a Float32Array (no copy). */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Transposes a row-major [rows, cols] matrix. */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  const tile = 64;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const r1 = Math.min(rows, r0 + tile);
      const c1 = Math.min(cols, c0 + tile);
      for (let r = r0; r < r1; r++) {
        for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
      }
    }
  }
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
 * `x @ w.T (+ bias)` for an HF Linear weight `w` [out, in]: MatMul on the transposed weight (fp32),
 * the same with an fp16 weight cast up (fp16), or MatMulNBits with accuracy_level 4 (q8, q4).
 */
export async function linear(
  g: OnnxModelWriter,
  x: string,
  name: string,
  w: F32Tensor,
  precision: Precision,
  bias?: F32Tensor,
): Promise<string> {
  const [n, k] = w.shape;
  const bits = quantBits(precision);
  let y: string;
  if (bits === null) {
    const t = transpose2d(w.data, n, k);
    if (precision === "fp16") {
      const h = await g.weight(name, DataType.FLOAT16, [k, n], fromFloat32(t, "F16"));
      y = g.op("MatMul", [x, g.op("Cast", [h], { to: DataType.FLOAT })]);
    } else {
      y = g.op("MatMul", [x, await g.weight(name, DataType.FLOAT, [k, n], f32Bytes(t))]);
    }
  } else {
    y = await matMulNBits(g, x, name, [w.data], n, k, bits);
  }
  return bias ? g.op("Add", [y, await f32Weight(g, `${name}.bias`, bias)]) : y;
}

/** MatMulNBits over weight rows [n, k] given as chunks of whole rows (streamed to the writer). */
export async function matMulNBits(
  g: OnnxModelWriter,
  x: string,
  name: string,
  rowChunks: Iterable<Float32Array> | AsyncIterable<Float32Array>,
  n: number,
  k: number,
  bits: QuantBits,
): Promise<string> {
  const blocks = blockCount(k, QUANT_BLOCK);
  const blob = (QUANT_BLOCK * bits) / 8;
  const scales = new Float32Array(n * blocks);
  let row = 0;
  async function* codes(): AsyncGenerator<Uint8Array> {
    for await (const chunk of rowChunks) {
      const rows = chunk.length / k;
      const q = quantizeRows(chunk, rows, k, bits, QUANT_BLOCK);
      scales.set(q.scales, row * blocks);
      row += rows;
      yield q.codes;
    }
  }
  const b = await g.weight(`${name}.q${bits}`, DataType.UINT8, [n, blocks, blob], codes());
  const s = await g.weight(`${name}.scales`, DataType.FLOAT, [n * blocks], f32Bytes(scales));
  return g.op("MatMulNBits", [x, b, s], {
    K: k,
    N: n,
    bits,
    block_size: QUANT_BLOCK,
    accuracy_level: 4,
  }, MS);
}

/** Gemma RMSNorm `x * rsqrt(mean(x²) + eps) * (1 + w)`, with 1 + w folded into the scale. */
export async function rmsNorm(
  g: OnnxModelWriter,
  x: string,
  name: string,
  w: F32Tensor,
  eps: number,
): Promise<string> {
  const scale = new Float32Array(w.data.length);
  for (let i = 0; i < scale.length; i++) scale[i] = 1 + w.data[i];
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
