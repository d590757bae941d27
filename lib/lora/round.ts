/**
 * Float64 values to the bytes of a float tensor, rounded once to nearest even: F64 as is, F32 by
 * Math.fround, F16 and BF16 through float32 rounded to odd (exact for the narrower formats, so
 * there is no double rounding).
 * @module
 */

import { f32BitsToBf16Bits, f32BitsToF16Bits } from "../checkpoint/dtype.ts";
import type { DType } from "../checkpoint/tensor.ts";

/** The float dtypes `roundTo` writes. */
export type FloatDType = "F64" | "F32" | "F16" | "BF16";

/** Whether `dtype` is one `roundTo` writes. */
export function isFloatDType(dtype: DType): dtype is FloatDType {
  return dtype === "F64" || dtype === "F32" || dtype === "F16" || dtype === "BF16";
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Float32 bits of `x` rounded to odd: truncated towards zero, with the last bit set when that lost
 * anything. Rounding this to any format of at most 22 significant bits is the correct rounding of x.
 */
function f32BitsRoundedToOdd(x: number): number {
  f32[0] = x;
  const f = f32[0];
  let bits = u32[0];
  if (f === x || Number.isNaN(x)) return bits;
  // f is x rounded to nearest; step one ulp back towards zero where it overshot |x|.
  if (Math.abs(f) > Math.abs(x)) bits -= 1;
  return (bits | 1) >>> 0;
}

/** `values` rounded once to `dtype`, little-endian bytes. */
export function roundTo(values: Float64Array, dtype: FloatDType): Uint8Array {
  const n = values.length;
  if (dtype === "F64") return new Uint8Array(values.slice().buffer);
  if (dtype === "F32") return new Uint8Array(Float32Array.from(values).buffer);
  const out = new Uint16Array(n);
  const convert = dtype === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let i = 0; i < n; i++) out[i] = convert(f32BitsRoundedToOdd(values[i]));
  return new Uint8Array(out.buffer);
}
