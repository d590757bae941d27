/**
 * What the converter reads: a model config and tensors under HF's legacy names, with helpers that
 * check shapes and return float32 data, whole or in row chunks.
 * @module
 */

import { toFloat32 } from "../checkpoint/dtype.ts";
import { DTYPE_BYTES, numel, type TensorRef } from "../checkpoint/tensor.ts";
import { InputError } from "../errors.ts";
import type { PaliGemmaConfig } from "../model/config.ts";

/** A checkpoint as the converter sees it (what `openCheckpoint` returns). */
export interface ConvertSource {
  /** Where it was read from (for messages). */
  readonly path: string;
  /** The model configuration. */
  readonly config: PaliGemmaConfig;
  /** Tensors by canonical HF legacy name, HF layouts (Linear weights [out, in]). */
  readonly tensors: ReadonlyMap<string, TensorRef>;
}

/** A float32 tensor in memory. */
export interface F32Tensor {
  /** Shape, row-major. */
  readonly shape: readonly number[];
  /** Values. */
  readonly data: Float32Array;
}

/** The tensor `name`, checked to have `shape`; a missing or misshapen tensor is an InputError. */
export function tensorRef(src: ConvertSource, name: string, shape: readonly number[]): TensorRef {
  const ref = src.tensors.get(name);
  if (!ref) throw new InputError(`${src.path}: tensor ${name} is missing`);
  if (
    numel(ref.shape) !== numel(shape) ||
    (ref.shape.length === shape.length && ref.shape.some((d, i) => d !== shape[i]))
  ) {
    throw new InputError(
      `${src.path}: tensor ${name} has shape [${ref.shape}], expected [${shape}]`,
    );
  }
  return ref;
}

/** Reads `name` as float32, checking it has `shape`. */
export async function readF32(
  src: ConvertSource,
  name: string,
  shape: readonly number[],
): Promise<F32Tensor> {
  const ref = tensorRef(src, name, shape);
  return { shape, data: toFloat32(await ref.read(), ref.dtype) };
}

/** Reads a 2-D tensor `name` of `shape` [rows, cols] as float32 chunks of at most `rowsPerChunk` rows. */
export async function* readRowChunks(
  src: ConvertSource,
  name: string,
  shape: readonly [number, number],
  rowsPerChunk: number,
): AsyncGenerator<Float32Array> {
  const ref = tensorRef(src, name, shape);
  const rowBytes = shape[1] * DTYPE_BYTES[ref.dtype];
  for (let r = 0; r < shape[0]; r += rowsPerChunk) {
    const rows = Math.min(rowsPerChunk, shape[0] - r);
    yield toFloat32(await ref.read(r * rowBytes, rows * rowBytes), ref.dtype);
  }
}
