/**
 * Loads the VQ-VAE mask decoder from big_vision's `vae-oid.npz` (PyTorch-named members:
 * `_vq_vae._embedding`, `decoder.{0,2,3,4,6,8,10,12}.*`) into float32 arrays in PyTorch layout,
 * checking every shape.
 * @module
 */

import { toFloat32 } from "../checkpoint/dtype.ts";
import { openNpz } from "../checkpoint/npz.ts";
import type { TensorStore } from "../checkpoint/tensor.ts";
import { describeFsError, InputError, PgError } from "../errors.ts";

/** A convolution's weights: PyTorch layout ([O,I,kh,kw] for Conv2d, [I,O,kh,kw] transposed). */
export interface ConvWeights {
  /** The kernel, row-major in `shape`. */
  readonly weight: Float32Array;
  /** One bias per output channel. */
  readonly bias: Float32Array;
  /** Kernel shape as stored. */
  readonly shape: readonly [number, number, number, number];
}

/** A residual block: conv3×3 → ReLU → conv3×3 → ReLU → conv1×1, plus the input. */
export interface ResBlockWeights {
  /** `net.0`, 3×3. */
  readonly conv0: ConvWeights;
  /** `net.2`, 3×3. */
  readonly conv1: ConvWeights;
  /** `net.4`, 1×1. */
  readonly conv2: ConvWeights;
}

/** The decoder half of the VQ-VAE. */
export interface VqvaeWeights {
  /** Codebook [codes, dim], row-major. */
  readonly embedding: Float32Array;
  /** Number of codes (128). */
  readonly codes: number;
  /** Code vector size. */
  readonly dim: number;
  /** `decoder.0`: 1×1, dim → 128. */
  readonly conv0: ConvWeights;
  /** `decoder.2`, `decoder.3`. */
  readonly res: readonly [ResBlockWeights, ResBlockWeights];
  /** `decoder.{4,6,8,10}`: ConvTranspose2d 4×4 stride 2 padding 1, [in, out, 4, 4]. */
  readonly up: readonly ConvWeights[];
  /** `decoder.12`: 1×1, 16 → 1. */
  readonly out: ConvWeights;
}

/** Number of seg codes per mask. */
export const CODES_PER_MASK = 16;

type Shape4 = readonly [number, number, number, number];

async function readTensor(
  store: TensorStore,
  path: string,
  name: string,
  shape: readonly number[],
): Promise<Float32Array> {
  const ref = store.get(name);
  if (!ref) throw new InputError(`${path}: tensor "${name}" is missing (not a vae-oid.npz?)`);
  if (ref.shape.length !== shape.length || ref.shape.some((d, i) => d !== shape[i])) {
    throw new InputError(
      `${path}: tensor "${name}" has shape [${ref.shape}], expected [${shape}]`,
    );
  }
  if (!["F32", "F16", "BF16", "F64"].includes(ref.dtype)) {
    throw new InputError(`${path}: tensor "${name}" has dtype ${ref.dtype}, expected a float`);
  }
  return toFloat32(await ref.read(), ref.dtype);
}

async function readConv(
  store: TensorStore,
  path: string,
  prefix: string,
  shape: Shape4,
  outChannels: number,
): Promise<ConvWeights> {
  return {
    weight: await readTensor(store, path, `${prefix}.weight`, shape),
    bias: await readTensor(store, path, `${prefix}.bias`, [outChannels]),
    shape,
  };
}

async function readResBlock(
  store: TensorStore,
  path: string,
  prefix: string,
): Promise<ResBlockWeights> {
  return {
    conv0: await readConv(store, path, `${prefix}.net.0`, [128, 128, 3, 3], 128),
    conv1: await readConv(store, path, `${prefix}.net.2`, [128, 128, 3, 3], 128),
    conv2: await readConv(store, path, `${prefix}.net.4`, [128, 128, 1, 1], 128),
  };
}

/** Reads the decoder weights from an open store (named as in vae-oid.npz). */
export async function readVqvaeWeights(store: TensorStore, path: string): Promise<VqvaeWeights> {
  const emb = store.get("_vq_vae._embedding");
  if (!emb) {
    throw new InputError(`${path}: tensor "_vq_vae._embedding" is missing (not a vae-oid.npz?)`);
  }
  if (emb.shape.length !== 2 || emb.shape[0] !== 128 || emb.shape[1] < 1) {
    throw new InputError(
      `${path}: tensor "_vq_vae._embedding" has shape [${emb.shape}], expected [128, D]`,
    );
  }
  const [codes, dim] = emb.shape;
  const channels = [128, 128, 64, 32, 16];
  const up: ConvWeights[] = [];
  for (let i = 0; i < 4; i++) {
    const [cin, cout] = [channels[i], channels[i + 1]];
    up.push(await readConv(store, path, `decoder.${4 + 2 * i}`, [cin, cout, 4, 4], cout));
  }
  return {
    embedding: await readTensor(store, path, "_vq_vae._embedding", [codes, dim]),
    codes,
    dim,
    conv0: await readConv(store, path, "decoder.0", [128, dim, 1, 1], 128),
    res: [
      await readResBlock(store, path, "decoder.2"),
      await readResBlock(store, path, "decoder.3"),
    ],
    up,
    out: await readConv(store, path, "decoder.12", [1, 16, 1, 1], 1),
  };
}

/** Opens `vae-oid.npz` and reads the decoder weights. */
export async function loadVqvaeWeights(path: string): Promise<VqvaeWeights> {
  let store: TensorStore;
  try {
    store = await openNpz(path);
  } catch (err) {
    if (err instanceof PgError) throw err;
    const e = describeFsError(err, path);
    if (e instanceof PgError) throw e;
    throw new InputError(`${path}: not a readable .npz (${(err as Error).message})`);
  }
  try {
    return await readVqvaeWeights(store, path);
  } finally {
    store.close();
  }
}

/** Checks a code sequence: 16 integers in 0..codes-1. */
export function checkCodes(codes: readonly number[], count = 128): void {
  if (codes.length !== CODES_PER_MASK) {
    throw new RangeError(`expected ${CODES_PER_MASK} seg codes, got ${codes.length}`);
  }
  for (const c of codes) {
    if (!Number.isInteger(c) || c < 0 || c >= count) {
      throw new RangeError(`seg code ${c} is out of range 0..${count - 1}`);
    }
  }
}
