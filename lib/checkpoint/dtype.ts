/**
 * Conversions between stored tensor bytes (little-endian) and Float32Array.
 * @module
 */

import { type DType, DTYPE_BYTES } from "./tensor.ts";

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("paligemma checkpoint code needs a little-endian host");
}

let f16Table: Float32Array | undefined;

/** All 65536 half-precision values as float32, built on first use. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      bits[h] = sign | 0x7f800000 | (mant << 13);
    } else if (exp !== 0) {
      bits[h] = sign | ((exp + 112) << 23) | (mant << 13);
    } else {
      table[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    }
  }
  f16Table = table;
  return table;
}

/** A typed view of `bytes` (copied first when its offset is not aligned to the element size). */
function aligned(bytes: Uint8Array, elemBytes: number): ArrayBuffer {
  if (bytes.byteOffset % elemBytes === 0 && bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return bytes.slice().buffer;
}

/** Offset into the buffer returned by `aligned`, in elements. */
function elemOffset(bytes: Uint8Array, buffer: ArrayBuffer, elemBytes: number): number {
  return buffer === bytes.buffer ? bytes.byteOffset / elemBytes : 0;
}

/** Converts little-endian tensor bytes of any dtype to float32 (64-bit ints lose precision). */
export function toFloat32(bytes: Uint8Array, dtype: DType): Float32Array {
  const size = DTYPE_BYTES[dtype];
  if (bytes.length % size !== 0) {
    throw new RangeError(`${bytes.length} bytes is not a whole number of ${dtype} elements`);
  }
  const n = bytes.length / size;
  const buf = aligned(bytes, size);
  const at = elemOffset(bytes, buf, size);
  const out = new Float32Array(n);
  switch (dtype) {
    case "F32":
      out.set(new Float32Array(buf, at * 4, n));
      return out;
    case "F64":
      out.set(new Float64Array(buf, at * 8, n));
      return out;
    case "F16": {
      const src = new Uint16Array(buf, at * 2, n);
      const table = halfTable();
      for (let i = 0; i < n; i++) out[i] = table[src[i]];
      return out;
    }
    case "BF16": {
      const src = new Uint16Array(buf, at * 2, n);
      const dst = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) dst[i] = src[i] << 16;
      return out;
    }
    case "I64":
    case "U64": {
      const src = dtype === "I64"
        ? new BigInt64Array(buf, at * 8, n)
        : new BigUint64Array(buf, at * 8, n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]);
      return out;
    }
    case "I32":
      out.set(new Int32Array(buf, at * 4, n));
      return out;
    case "U32":
      out.set(new Uint32Array(buf, at * 4, n));
      return out;
    case "I16":
      out.set(new Int16Array(buf, at * 2, n));
      return out;
    case "U16":
      out.set(new Uint16Array(buf, at * 2, n));
      return out;
    case "I8":
      out.set(new Int8Array(buf, at, n));
      return out;
    case "U8":
      out.set(bytes);
      return out;
    case "BOOL":
      for (let i = 0; i < n; i++) out[i] = bytes[i] ? 1 : 0;
      return out;
  }
}

/** Float32 bits to half-precision bits, rounding to nearest even (overflow gives ±inf). */
export function f32BitsToF16Bits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  const mant = f & 0x7fffff;
  if (exp === 0xff) {
    const payload = mant >>> 13;
    return sign | 0x7c00 | (mant === 0 ? 0 : payload === 0 ? 0x200 : payload);
  }
  if (exp >= 143) return sign | 0x7c00;
  if (exp >= 113) {
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    return sign | h;
  }
  if (exp < 102) return sign;
  const sig = mant | 0x800000;
  const shift = 126 - exp;
  let h = sig >>> shift;
  const rem = sig & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (h & 1))) h++;
  return sign | h;
}

/** Float32 bits to bfloat16 bits, rounding to nearest even (NaN stays a quiet NaN). */
export function f32BitsToBf16Bits(f: number): number {
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) return ((f >>> 16) | 0x40) & 0xffff;
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Converts float32 values to little-endian bytes of F32, F16 or BF16 (round to nearest even). */
export function fromFloat32(values: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  if (dtype === "F32") {
    return new Uint8Array(
      values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength),
    );
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  const convert = dtype === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let i = 0; i < out.length; i++) out[i] = convert(bits[i]);
  return new Uint8Array(out.buffer);
}
