/**
 * A base tensor with adapters merged in, computed when read: rows of W + Σ scale·B·A (and full
 * replacements) in float64, rounded once to the base tensor's dtype. Only the rows a read asks for
 * are computed, so the converter streams as it does over the bare checkpoint.
 * @module
 */

import { toFloat32 } from "../checkpoint/dtype.ts";
import { DTYPE_BYTES, numel, type TensorRef } from "../checkpoint/tensor.ts";
import { isFloatDType, roundTo } from "./round.ts";

/** One adapter's change to a base tensor, applied in adapter order. */
export type TensorEdit =
  | {
    /** W += scale · B·A. */
    readonly kind: "lora";
    /** lora_A, [r, in]. */
    readonly a: TensorRef;
    /** lora_B, [out, r]. */
    readonly b: TensorRef;
    /** alpha/r (or alpha/√r) times the caller's scale. */
    readonly scale: number;
  }
  | {
    /** W = the stored tensor (same shape, any float dtype). */
    readonly kind: "replace";
    /** The replacement. */
    readonly ref: TensorRef;
  };

/** Rows and row width of a tensor seen as a matrix over its first axis. */
function matrixShape(shape: readonly number[]): { rows: number; cols: number } {
  const rows = shape.length >= 2 ? shape[0] : 1;
  return { rows, cols: numel(shape) / rows };
}

/** Float64 copy of tensor bytes. */
function f64(bytes: Uint8Array, ref: TensorRef): Float64Array {
  return Float64Array.from(toFloat32(bytes, ref.dtype));
}

/** Rows merged per block: bounds the float64 scratch of one read, whatever its size. */
const BLOCK_ROWS = 256;

/** A LoRA edit with its A matrix read once per tensor read. */
interface LoadedLora {
  readonly a: Float64Array;
  readonly b: TensorRef;
  readonly r: number;
  readonly scale: number;
}

/** Rows [r0, r1) of `from` (the base or the last replacement) plus `loras`, in float64. */
async function mergedRows(
  from: TensorRef,
  loras: readonly LoadedLora[],
  cols: number,
  r0: number,
  r1: number,
): Promise<Float64Array> {
  const eb = DTYPE_BYTES[from.dtype];
  const acc = f64(await from.read(r0 * cols * eb, (r1 - r0) * cols * eb), from);
  const delta = new Float64Array(cols);
  for (const { a, b: bRef, r, scale } of loras) {
    const bBytes = DTYPE_BYTES[bRef.dtype] * r;
    const b = f64(await bRef.read(r0 * bBytes, (r1 - r0) * bBytes), bRef);
    for (let o = 0; o < r1 - r0; o++) {
      delta.fill(0);
      for (let k = 0; k < r; k++) {
        const bk = b[o * r + k];
        if (bk === 0) continue;
        const row = k * cols;
        for (let i = 0; i < cols; i++) delta[i] += bk * a[row + i];
      }
      const at = o * cols;
      for (let i = 0; i < cols; i++) acc[at + i] += scale * delta[i];
    }
  }
  return acc;
}

/**
 * `base` with `edits` merged: same name, dtype and shape, its bytes computed on each read from the
 * rows the read covers. The base must be a float tensor; LoRA edits need a 2-D base [out, in] with
 * A [r, in] and B [out, r], replacements the base's shape (the caller checks both). Rows are
 * merged `blockRows` at a time.
 */
export function mergedTensor(
  base: TensorRef,
  edits: readonly TensorEdit[],
  blockRows = BLOCK_ROWS,
): TensorRef {
  const dtype = base.dtype;
  if (!isFloatDType(dtype)) throw new RangeError(`${base.name}: cannot merge into ${dtype}`);
  const { rows, cols } = matrixShape(base.shape);
  const rowBytes = cols * DTYPE_BYTES[dtype];
  return {
    name: base.name,
    dtype,
    shape: base.shape,
    byteLength: base.byteLength,
    async read(offset = 0, length = base.byteLength - offset): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > base.byteLength) {
        throw new RangeError(`${base.name}: read of ${length} bytes at ${offset} out of range`);
      }
      if (length === 0) return new Uint8Array(0);
      const r0 = Math.floor(offset / rowBytes);
      const r1 = Math.min(rows, Math.ceil((offset + length) / rowBytes));
      // Everything before the last replacement is overwritten by it.
      let start = edits.length - 1;
      while (start >= 0 && edits[start].kind !== "replace") start--;
      const last = start >= 0 ? edits[start] : undefined;
      const from = last?.kind === "replace" ? last.ref : base;
      const loras: LoadedLora[] = [];
      for (const e of edits.slice(start + 1)) {
        if (e.kind !== "lora") continue;
        loras.push({ a: f64(await e.a.read(), e.a), b: e.b, r: e.a.shape[0], scale: e.scale });
      }
      const bytes = new Uint8Array((r1 - r0) * rowBytes);
      for (let r = r0; r < r1; r += blockRows) {
        const end = Math.min(r1, r + blockRows);
        bytes.set(roundTo(await mergedRows(from, loras, cols, r, end), dtype), (r - r0) * rowBytes);
      }
      const skip = offset - r0 * rowBytes;
      return bytes.subarray(skip, skip + length);
    },
  };
}
