/**
 * The shared vocabulary of the checkpoint readers: element types and lazily read tensors.
 * @module
 */

/** Element types a checkpoint tensor may hold (safetensors spelling). */
export type DType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** A tensor in a checkpoint whose bytes are read only when asked for. */
export interface TensorRef {
  /** Name inside its file (a safetensors key or an npz member path without `.npy`). */
  readonly name: string;
  /** Element type of the stored bytes. */
  readonly dtype: DType;
  /** Shape, row-major. */
  readonly shape: readonly number[];
  /** Total bytes of the tensor data. */
  readonly byteLength: number;
  /**
   * Reads `length` bytes starting `offset` bytes into the tensor data (little-endian, row-major).
   * Defaults read the whole tensor.
   */
  read(offset?: number, length?: number): Promise<Uint8Array>;
}

/** An open checkpoint file (or set of shards): tensors by name, read lazily. */
export interface TensorStore {
  /** Path the store was opened from (file or folder). */
  readonly path: string;
  /** File format of the store. */
  readonly format: "safetensors" | "npz";
  /** Tensor names in file order. */
  names(): string[];
  /** The tensor called `name`, or undefined. */
  get(name: string): TensorRef | undefined;
  /** Closes every file handle. */
  close(): void;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Reads the `index`-th sub-tensor along axis 0 (one layer of a stacked/scanned tensor). */
export function readIndex(ref: TensorRef, index: number): Promise<Uint8Array> {
  const [n, ...rest] = ref.shape;
  if (n === undefined || index < 0 || index >= n) {
    throw new RangeError(`${ref.name}: index ${index} out of range for shape [${ref.shape}]`);
  }
  const stride = numel(rest) * DTYPE_BYTES[ref.dtype];
  return ref.read(index * stride, stride);
}

/** The name, element type and shape of a tensor, without its data. */
export interface TensorSpec {
  /** Name in the output file. */
  readonly name: string;
  /** Element type of the bytes `data()` yields. */
  readonly dtype: DType;
  /** Shape, row-major. */
  readonly shape: readonly number[];
}

/** Tensor bytes, whole or as chunks that concatenate to the tensor bytes (little-endian). */
export type TensorData = Uint8Array | AsyncIterable<Uint8Array>;

/** A tensor to write: its spec and a function producing its bytes, called once, in file order. */
export interface WritableTensor extends TensorSpec {
  /** Produces the tensor's bytes (`numel(shape) * DTYPE_BYTES[dtype]` in all). */
  data(): TensorData | Promise<TensorData>;
}
