/**
 * `.npz` checkpoints (a zip of `.npy` members, as big_vision saves them): lazy reader and
 * streaming writer of stored ZIP64 archives.
 * @module
 */

import { InputError } from "../errors.ts";
import { encodeNpyHeader, npyHeaderLength, parseNpyHeader } from "./npy.ts";
import { streamTensor } from "./file.ts";
import {
  DTYPE_BYTES,
  numel,
  type TensorRef,
  type TensorStore,
  type WritableTensor,
} from "./tensor.ts";
import { ZipArchive, type ZipEntry, ZipWriter } from "./zip.ts";

/** Bytes read first from each member, enough for any ordinary `.npy` header. */
const HEADER_PROBE = 512;

/** Reads and checks the `.npy` header of one member and returns its lazy tensor. */
async function memberRef(zip: ZipArchive, entry: ZipEntry): Promise<TensorRef> {
  const name = entry.name.slice(0, -".npy".length);
  const label = `${zip.path}: member "${entry.name}"`;
  if (entry.method !== 0 && entry.method !== 8) {
    throw new InputError(`${label}: compression method ${entry.method} not supported`);
  }
  let head = await zip.read(entry, 0, Math.min(entry.size, HEADER_PROBE));
  const headerLength = npyHeaderLength(head, label);
  if (headerLength > entry.size) throw new InputError(`${label}: .npy header is truncated`);
  if (headerLength > head.length) head = await zip.read(entry, 0, headerLength);
  const npy = parseNpyHeader(head, label);
  const byteLength = numel(npy.shape) * DTYPE_BYTES[npy.dtype];
  if (entry.size !== headerLength + byteLength) {
    throw new InputError(
      `${label}: holds ${entry.size - headerLength} data bytes but its .npy header ` +
        `(${npy.dtype} [${npy.shape}]) needs ${byteLength}`,
    );
  }
  return {
    name,
    dtype: npy.dtype,
    shape: npy.shape,
    byteLength,
    async read(offset = 0, length = byteLength - offset): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > byteLength) {
        throw new RangeError(
          `${name}: read of ${length} bytes at ${offset} is outside its ${byteLength} bytes`,
        );
      }
      if (entry.method === 0 && offset === 0 && length === byteLength) {
        // Whole member in one pread, so the archive checks its CRC-32.
        return (await zip.read(entry, 0, entry.size, true)).subarray(headerLength);
      }
      return zip.read(entry, headerLength + offset, length);
    },
  };
}

/**
 * Opens an `.npz`; tensor names are member names without ".npy" (kept as stored, e.g. with
 * a `params/` prefix). Members not ending in ".npy" are ignored.
 */
export async function openNpz(path: string): Promise<TensorStore> {
  const zip = await ZipArchive.open(path);
  try {
    const refs: TensorRef[] = [];
    const byName = new Map<string, TensorRef>();
    for (const entry of zip.entries) {
      if (!entry.name.endsWith(".npy")) continue;
      const ref = await memberRef(zip, entry);
      if (byName.has(ref.name)) continue;
      refs.push(ref);
      byName.set(ref.name, ref);
    }
    return {
      path,
      format: "npz",
      names: () => refs.map((r) => r.name),
      get: (name) => byName.get(name),
      close: () => zip.close(),
    };
  } catch (err) {
    zip.close();
    throw err;
  }
}

/**
 * Writes an `.npz` as a stored ZIP64 archive (member `<name>.npy` per tensor, BF16 as `<V2`),
 * streaming each tensor's data in turn; written under a temporary name and renamed.
 */
export async function writeNpz(
  path: string,
  tensors: Iterable<WritableTensor> | AsyncIterable<WritableTensor>,
): Promise<void> {
  const zip = ZipWriter.create(path);
  try {
    for await (const item of tensors) {
      const t: WritableTensor = item;
      if (!Object.hasOwn(DTYPE_BYTES, t.dtype)) {
        throw new InputError(`${path}: tensor "${t.name}": unknown dtype ${t.dtype}`);
      }
      if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new InputError(`${path}: tensor "${t.name}": bad shape [${t.shape}]`);
      }
      const header = encodeNpyHeader(t.dtype, t.shape);
      const size = header.length + numel(t.shape) * DTYPE_BYTES[t.dtype];
      await zip.addStored(`${t.name}.npy`, size, async (write) => {
        await write(header);
        await streamTensor(path, t, write);
      });
    }
    await zip.finish();
  } catch (err) {
    zip.abort();
    throw err;
  }
}
