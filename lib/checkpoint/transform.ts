/**
 * Moving tensor elements of any byte width: N-d axis permutation on raw bytes, and the
 * TensorRef wrappers built from it.
 * @module
 */

import { DTYPE_BYTES, numel, type TensorRef } from "./tensor.ts";

type Words = Uint8Array | Uint16Array | Uint32Array;

function words(bytes: Uint8Array, width: 1 | 2 | 4): Words {
  const aligned = bytes.byteOffset % width === 0 ? bytes : bytes.slice();
  if (width === 1) return aligned;
  if (width === 2) return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length / 2);
  return new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.length / 4);
}

/** Shape of a tensor after permuting its axes by `perm` (output axis k = input axis perm[k]). */
export function permutedShape(shape: readonly number[], perm: readonly number[]): number[] {
  return perm.map((p) => shape[p]);
}

/** Drops size-1 axes and merges input axes that stay neighbours in the same order. */
function simplify(
  shape: readonly number[],
  perm: readonly number[],
): { shape: number[]; perm: number[] } {
  const keep = shape.map((n, i) => (n === 1 ? -1 : i)).filter((i) => i >= 0);
  const renumber = new Map(keep.map((a, i) => [a, i]));
  let s = keep.map((a) => shape[a]);
  let p = perm.filter((a) => renumber.has(a)).map((a) => renumber.get(a)!);
  for (let k = 0; k + 1 < p.length;) {
    const a = p[k];
    if (p[k + 1] === a + 1) {
      s = [...s.slice(0, a), s[a] * s[a + 1], ...s.slice(a + 2)];
      p = p.filter((_, j) => j !== k + 1).map((x) => (x > a ? x - 1 : x));
    } else k++;
  }
  return { shape: s, perm: p };
}

/**
 * Permutes the axes of a row-major tensor held as bytes: output axis k is input axis perm[k]
 * (numpy's `transpose(perm)`). Works for any element width; bytes are moved, never converted.
 */
export function permuteBytes(
  src: Uint8Array,
  shape: readonly number[],
  perm: readonly number[],
  elemBytes: number,
): Uint8Array {
  if (perm.length !== shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new RangeError(`permutation [${perm}] does not fit shape [${shape}]`);
  }
  if (src.length !== numel(shape) * elemBytes) {
    throw new RangeError(`${src.length} bytes do not hold shape [${shape}] x ${elemBytes} bytes`);
  }
  const width = elemBytes % 4 === 0 ? 4 : elemBytes % 2 === 0 ? 2 : 1;
  const per = elemBytes / width;
  const fullShape = per > 1 ? [...shape, per] : [...shape];
  const fullPerm = per > 1 ? [...perm, shape.length] : [...perm];
  const { shape: s, perm: p } = simplify(fullShape, fullPerm);
  const out = new Uint8Array(src.length);
  if (s.length <= 1 || p.every((a, i) => a === i)) {
    out.set(src);
    return out;
  }
  const from = words(src, width);
  const to = words(out, width);
  const inStride = new Array<number>(s.length);
  let acc = 1;
  for (let a = s.length - 1; a >= 0; a--) {
    inStride[a] = acc;
    acc *= s[a];
  }
  if (s.length === 2) {
    transpose2d(from, to, s[0], s[1]);
    return out;
  }
  const outShape = p.map((a) => s[a]);
  const strides = p.map((a) => inStride[a]);
  const rank = outShape.length;
  const inner = outShape[rank - 1];
  const innerStride = strides[rank - 1];
  const idx = new Array<number>(rank - 1).fill(0);
  let base = 0;
  for (let o = 0; o < to.length; o += inner) {
    for (let j = 0, q = base; j < inner; j++, q += innerStride) to[o + j] = from[q];
    for (let k = rank - 2; k >= 0; k--) {
      idx[k]++;
      base += strides[k];
      if (idx[k] < outShape[k]) break;
      base -= strides[k] * outShape[k];
      idx[k] = 0;
    }
  }
  return out;
}

/** Cache-blocked transpose of a rows x cols matrix of words into cols x rows. */
/** Writes the transpose of the row-major `rows`×`cols` matrix `from` into `to` (cache-tiled). */
export function transpose2d(from: Words, to: Words, rows: number, cols: number): void {
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) to[o + r] = from[r * cols + c];
      }
    }
  }
}

/** How a derived tensor is cut from a stored one: leading indices, then an axis permutation. */
export interface Derivation {
  /** Leading indices selecting a contiguous block of the source (e.g. [layer] or [layer, 0]). */
  readonly index: readonly number[];
  /** Axis permutation applied to the selected block (identity when omitted). */
  readonly perm?: readonly number[];
  /** Final shape (a reshape of the permuted block; same element count). */
  readonly shape: readonly number[];
}

/**
 * A TensorRef whose bytes are a block of `src` (leading indices), permuted and reshaped. Only the
 * selected block is read; the element type is kept.
 */
export function deriveTensor(name: string, src: TensorRef, how: Derivation): TensorRef {
  const elem = DTYPE_BYTES[src.dtype];
  const blockShape = src.shape.slice(how.index.length);
  let offset = 0;
  let stride = numel(src.shape) * elem;
  how.index.forEach((i, a) => {
    const n = src.shape[a];
    if (!(i >= 0 && i < n)) {
      throw new RangeError(`${src.name}: index ${i} out of range for shape [${src.shape}]`);
    }
    stride /= n;
    offset += i * stride;
  });
  const byteLength = stride;
  if (numel(how.shape) * elem !== byteLength) {
    throw new RangeError(`${name}: shape [${how.shape}] does not hold a block of [${blockShape}]`);
  }
  const perm = how.perm && !how.perm.every((a, i) => a === i) ? how.perm : undefined;
  return {
    name,
    dtype: src.dtype,
    shape: how.shape,
    byteLength,
    async read(off = 0, length = byteLength - off): Promise<Uint8Array> {
      if (off < 0 || length < 0 || off + length > byteLength) {
        throw new RangeError(`${name}: read of ${length} bytes at ${off} is outside ${byteLength}`);
      }
      if (!perm) return src.read(offset + off, length);
      const block = await src.read(offset, byteLength);
      const moved = permuteBytes(block, blockShape, perm, elem);
      return off === 0 && length === byteLength ? moved : moved.subarray(off, off + length);
    },
  };
}

/** The same tensor under another name (and optionally another shape of equal size). */
export function renameTensor(name: string, src: TensorRef, shape = src.shape): TensorRef {
  return {
    name,
    dtype: src.dtype,
    shape,
    byteLength: src.byteLength,
    read: (offset?: number, length?: number) => src.read(offset, length),
  };
}
