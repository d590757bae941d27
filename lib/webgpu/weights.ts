/**
 * Weight matrices on the device in the storage formats the GEMV / GEMM kernels read: f32, f16
 * (IEEE halves, two per u32) and the 8/4-bit block layouts of converted ONNX folders
 * (MatMulNBits: codes [N, blocks, blockSize * bits / 8], one f32 scale per block, zero points
 * implicit, nibble-packed or one byte per block), so one folder serves both backends.
 * @module
 */

import { fromFloat32 } from "../checkpoint/dtype.ts";
import { packZeroPoints } from "../convert/quantize.ts";
import { type GpuRunner, type GpuTensor, grid, ParamWriter } from "./runner.ts";
import { variantPipeline } from "./variants.ts";

/** Storage format of a weight matrix on the device. */
export type GpuWeightFormat = "f32" | "f16" | "q8" | "q4";

/** How block zero points are stored: absent (2^(bits-1)), MatMulNBits nibbles, or bytes. */
export type ZeroLayout = "none" | "nibbles" | "bytes";

/** A [n, k] weight (HF Linear [out, in] row order) in one of the device formats. */
export interface GpuWeight {
  /** Storage format. */
  readonly format: GpuWeightFormat;
  /** The data: f32 values, packed halves, or code bytes packed little-endian into u32. */
  readonly data: GpuTensor;
  /** Rows (output features). */
  readonly n: number;
  /** Columns (input features). */
  readonly k: number;
  /** Block size along k (q8 / q4). */
  readonly blockSize?: number;
  /** f32 scales [n, blocks] (q8 / q4). */
  readonly scales?: GpuTensor;
  /** Zero points (q8 / q4), bytes packed little-endian into u32, laid out as `zeroLayout`. */
  readonly zeros?: GpuTensor;
  /** Zero point layout (default "none" without `zeros`, else "nibbles" for q4, "bytes" for q8). */
  readonly zeroLayout?: ZeroLayout;
}

/** Bytes of one stored row of `w` (the block layouts pad the last block). */
export function rowBytes(w: Pick<GpuWeight, "format" | "k" | "blockSize">): number {
  if (w.format === "f32") return 4 * w.k;
  if (w.format === "f16") return 2 * w.k;
  const bs = w.blockSize ?? 0;
  return Math.ceil(w.k / bs) * bs * (w.format === "q8" ? 1 : 0.5);
}

/** Bytes copied into u32 words, little-endian, zero-padded to whole words. */
export function bytesToWords(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array(Math.max(1, Math.ceil(bytes.length / 4)));
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** Uploads a [n, k] f32 weight. */
export function f32Weight(r: GpuRunner, data: Float32Array, n: number, k: number): GpuWeight {
  return { format: "f32", data: r.tensor(data), n, k };
}

/**
 * Uploads a [n, k] weight as f16: f32 values are rounded to halves; a Uint8Array is taken as
 * raw little-endian halves (an F16 checkpoint tensor or ONNX initializer).
 */
export function f16Weight(
  r: GpuRunner,
  data: Float32Array | Uint8Array,
  n: number,
  k: number,
): GpuWeight {
  const bytes = data instanceof Uint8Array ? data : fromFloat32(data, "F16");
  if (bytes.length !== 2 * n * k) {
    throw new RangeError(`f16Weight: ${bytes.length} bytes for a ${n}×${k} weight`);
  }
  return { format: "f16", data: r.tensor(bytesToWords(bytes)), n, k };
}

/** Block-quantised rows as `lib/convert/quantize.ts` and the converted folders store them. */
export interface QuantRowsData {
  /** Codes [n, blocks, blockSize * bits / 8]. */
  readonly codes: Uint8Array;
  /** Scales [n * blocks]. */
  readonly scales: Float32Array;
  /** Zero points: [n, blocks] bytes, or MatMulNBits' packed nibbles; absent when symmetric. */
  readonly zeros?: Uint8Array;
}

/** Uploads block-quantised rows (zero points as `zeroLayout`, default nibbles for q4). */
export function quantWeight(
  r: GpuRunner,
  q: QuantRowsData,
  n: number,
  k: number,
  bits: 4 | 8,
  blockSize: number,
  zeroLayout?: ZeroLayout,
): GpuWeight {
  const zl: ZeroLayout = q.zeros ? zeroLayout ?? (bits === 4 ? "nibbles" : "bytes") : "none";
  return {
    format: bits === 8 ? "q8" : "q4",
    data: r.tensor(bytesToWords(q.codes)),
    n,
    k,
    blockSize,
    scales: r.tensor(q.scales),
    zeros: q.zeros ? r.tensor(bytesToWords(q.zeros)) : undefined,
    zeroLayout: zl,
  };
}

/**
 * `quantizeRows` output with zero points in the layout `quantWeight` expects by default
 * (MatMulNBits nibbles for 4 bits, bytes for 8).
 */
export function packZeroPointsFor(
  q: QuantRowsData,
  n: number,
  k: number,
  s: { readonly bits: 4 | 8; readonly blockSize: number },
): QuantRowsData {
  if (!q.zeros || s.bits === 8) return q;
  return { ...q, zeros: packZeroPoints(q.zeros, n, Math.ceil(k / s.blockSize), 4) };
}

/**
 * Records the transpose of a [k, n] matrix `src` (an ONNX MatMul initializer, [in, out]) into
 * the [n, k] row order of a GpuWeight, optionally converting f32 to f16 (kernels/transpose.wgsl;
 * once at load). `src` holds f32 values or packed halves (`srcF16`); f16 output needs even k.
 */
export async function transposeWeight(
  r: GpuRunner,
  src: GpuTensor,
  k: number,
  n: number,
  srcF16: boolean,
  format: "f32" | "f16",
): Promise<GpuWeight> {
  if (!Number.isInteger(k) || k < 1 || !Number.isInteger(n) || n < 1) {
    throw new RangeError(`transposeWeight: bad shape ${k}×${n}`);
  }
  if (format === "f16" && k % 2 !== 0) throw new RangeError(`transposeWeight: f16 needs even k`);
  const inWords = srcF16 ? Math.ceil((k * n) / 2) : k * n;
  if (src.length < inWords) {
    throw new RangeError(`transposeWeight: source holds ${src.length} words, needs ${inWords}`);
  }
  const outWords = format === "f16" ? (k * n) / 2 : k * n;
  const data = r.zeros(outWords, "transposed weight");
  const pipeline = await variantPipeline(r, "transpose", {
    IN_F16: srcF16 ? 1 : 0,
    OUT_F16: format === "f16" ? 1 : 0,
  });
  const p = new ParamWriter().u32(k).u32(n);
  r.record(pipeline, "transpose", [src, data], p, grid(Math.ceil(outWords / 256)));
  return { format, data, n, k };
}
