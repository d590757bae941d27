/**
 * safetensors reader (single file or HF-sharded, read lazily by offset) and streaming writer.
 * @module
 */

import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { InputError } from "../errors.ts";
import { describeFsError, RandomAccessFile, streamTensor, writeAtomically } from "./file.ts";
import {
  type DType,
  DTYPE_BYTES,
  numel,
  type TensorRef,
  type TensorStore,
  type WritableTensor,
} from "./tensor.ts";

/** Headers larger than this are taken as corruption. */
const MAX_HEADER_BYTES = 100_000_000;

/** File name of a single-file HF checkpoint. */
const SINGLE_FILE = "model.safetensors";
/** File name of an HF sharded-checkpoint index. */
const INDEX_FILE = "model.safetensors.index.json";

/** An open safetensors checkpoint; `metadata` is the single file's `__metadata__` (empty if none). */
export interface SafetensorsStore extends TensorStore {
  /** String metadata of the file (for shards, the first shard's). */
  readonly metadata: Readonly<Record<string, string>>;
}

/** One parsed header entry. */
interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function isDType(s: unknown): s is DType {
  return typeof s === "string" && Object.hasOwn(DTYPE_BYTES, s);
}

function isCount(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

/** Parses and checks a header; offsets are relative to the data section of `dataLength` bytes. */
function parseHeader(
  path: string,
  json: string,
  dataLength: number,
): { entries: Entry[]; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(`${path}: safetensors header is not valid JSON (${why})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new InputError(`${path}: safetensors header is not a JSON object`);
  }
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (typeof value === "object" && value !== null) {
        for (const [k, v] of Object.entries(value)) if (typeof v === "string") metadata[k] = v;
      }
      continue;
    }
    const where = `${path}: tensor "${name}"`;
    if (typeof value !== "object" || value === null) {
      throw new InputError(`${where}: header entry is not an object`);
    }
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (!isDType(dtype)) {
      throw new InputError(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw new InputError(`${where}: shape ${JSON.stringify(shape)} is not a list of sizes`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      throw new InputError(`${where}: data_offsets ${JSON.stringify(offsets)} is not [begin, end]`);
    }
    const [begin, end] = offsets as number[];
    if (end < begin) {
      throw new InputError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    }
    const need = numel(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== need) {
      throw new InputError(
        `${where}: data_offsets [${begin}, ${end}] hold ${
          end - begin
        } bytes but ${dtype} [${shape}] needs ${need}`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of entries) {
    if (e.begin < at) {
      throw new InputError(
        `${path}: tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap the previous tensor (ends at ${at})`,
      );
    }
    if (e.begin > at) {
      throw new InputError(
        `${path}: tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] leave a gap after byte ${at}`,
      );
    }
    if (e.end > dataLength) {
      throw new InputError(
        `${path}: tensor "${e.name}": file is truncated (data ends at ${e.end}, file holds ${dataLength} data bytes)`,
      );
    }
    at = e.end;
  }
  return { entries, metadata };
}

/** A lazily read tensor at `dataStart + entry.begin` of `file`. */
function tensorRef(file: RandomAccessFile, dataStart: number, e: Entry): TensorRef {
  const byteLength = e.end - e.begin;
  return {
    name: e.name,
    dtype: e.dtype,
    shape: e.shape,
    byteLength,
    read(offset = 0, length = byteLength - offset): Promise<Uint8Array> {
      if (offset < 0 || length < 0 || offset + length > byteLength) {
        throw new RangeError(
          `${e.name}: read of ${length} bytes at ${offset} is outside its ${byteLength} bytes`,
        );
      }
      if (length === 0) return Promise.resolve(new Uint8Array(0));
      return file.read(dataStart + e.begin + offset, length, `tensor "${e.name}"`);
    },
  };
}

/** Opens one .safetensors file and reads its header. */
async function openFile(
  path: string,
): Promise<{ file: RandomAccessFile; refs: TensorRef[]; metadata: Record<string, string> }> {
  const file = await RandomAccessFile.open(path);
  try {
    if (file.size < 8) throw new InputError(`${path}: too short to be a safetensors file`);
    const lenBytes = await file.read(0, 8);
    const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw new InputError(`${path}: safetensors header length ${headerLen} is absurd (> 100 MB)`);
    }
    const n = Number(headerLen);
    if (8 + n > file.size) {
      throw new InputError(
        `${path}: safetensors header length ${n} is beyond the file size ${file.size}`,
      );
    }
    const json = new TextDecoder().decode(await file.read(8, n));
    const { entries, metadata } = parseHeader(path, json, file.size - 8 - n);
    return { file, refs: entries.map((e) => tensorRef(file, 8 + n, e)), metadata };
  } catch (err) {
    file.close();
    throw err;
  }
}

/** Builds a store over tensors from one or more open files. */
function makeStore(
  path: string,
  files: RandomAccessFile[],
  refs: TensorRef[],
  metadata: Record<string, string>,
): SafetensorsStore {
  const byName = new Map(refs.map((r) => [r.name, r]));
  return {
    path,
    format: "safetensors",
    metadata,
    names: () => refs.map((r) => r.name),
    get: (name) => byName.get(name),
    close: () => files.forEach((f) => f.close()),
  };
}

/** Opens an HF sharded checkpoint from its index file. */
async function openSharded(indexPath: string): Promise<SafetensorsStore> {
  let text: string;
  try {
    text = await Deno.readTextFile(indexPath);
  } catch (err) {
    throw describeFsError(err, indexPath);
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(`${indexPath}: index is not valid JSON (${why})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new InputError(`${indexPath}: index has no "weight_map" object`);
  }
  const wanted = new Map<string, Set<string>>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== "string" || shard === "") {
      throw new InputError(`${indexPath}: tensor "${name}" maps to ${JSON.stringify(shard)}`);
    }
    const set = wanted.get(shard) ?? new Set<string>();
    set.add(name);
    wanted.set(shard, set);
  }
  const dir = dirname(indexPath);
  const files: RandomAccessFile[] = [];
  const refs: TensorRef[] = [];
  let metadata: Record<string, string> | undefined;
  try {
    for (const [shard, names] of [...wanted].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
      const shardPath = join(dir, shard);
      if (!fs.existsSync(shardPath)) {
        throw new InputError(`${indexPath}: shard file "${shard}" named in the index is missing`);
      }
      const opened = await openFile(shardPath);
      files.push(opened.file);
      metadata ??= opened.metadata;
      const found = new Set<string>();
      for (const r of opened.refs) {
        if (names.has(r.name)) {
          refs.push(r);
          found.add(r.name);
        }
      }
      for (const name of names) {
        if (!found.has(name)) {
          throw new InputError(`${shardPath}: tensor "${name}" named in the index is not in it`);
        }
      }
    }
  } catch (err) {
    files.forEach((f) => f.close());
    throw err;
  }
  return makeStore(indexPath, files, refs, metadata ?? {});
}

/**
 * Opens a .safetensors file, a folder holding model.safetensors or
 * model.safetensors.index.json (sharded), or the index file itself.
 */
export async function openSafetensors(path: string): Promise<SafetensorsStore> {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  if (stat.isDirectory()) {
    if (fs.existsSync(join(path, INDEX_FILE))) return openSharded(join(path, INDEX_FILE));
    if (fs.existsSync(join(path, SINGLE_FILE))) return openSafetensors(join(path, SINGLE_FILE));
    throw new InputError(`${path}: folder holds neither ${SINGLE_FILE} nor ${INDEX_FILE}`);
  }
  if (basename(path).endsWith(".json")) return openSharded(path);
  const { file, refs, metadata } = await openFile(path);
  return makeStore(path, [file], refs, metadata);
}

/** Checks names and shapes of tensors to write. */
function checkSpecs(path: string, tensors: readonly WritableTensor[]): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "" || t.name === "__metadata__") {
      throw new InputError(`${path}: invalid tensor name ${JSON.stringify(t.name)}`);
    }
    if (seen.has(t.name)) throw new InputError(`${path}: tensor "${t.name}" given twice`);
    seen.add(t.name);
    if (!isDType(t.dtype)) {
      throw new InputError(`${path}: tensor "${t.name}": unknown dtype ${t.dtype}`);
    }
    if (!t.shape.every(isCount)) {
      throw new InputError(`${path}: tensor "${t.name}": bad shape [${t.shape}]`);
    }
  }
}

/** The header bytes (length prefix + JSON padded with spaces to 8 bytes) for `tensors`. */
function headerBytes(
  tensors: readonly WritableTensor[],
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let at = 0;
  for (const t of tensors) {
    const size = numel(t.shape) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [at, at + size] };
    at += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * Writes a .safetensors file: header first (offsets in the given order), then each tensor's
 * data, calling `data()` one tensor at a time; written under a temporary name and renamed.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly WritableTensor[],
  metadata?: Record<string, string>,
): Promise<void> {
  checkSpecs(path, tensors);
  const header = headerBytes(tensors, metadata);
  await writeAtomically(path, async (out) => {
    await out.write(header);
    for (const t of tensors) await streamTensor(path, t, (c) => out.write(c));
  });
}

/** Shard file name in the HF layout, e.g. model-00001-of-00003.safetensors. */
export function shardName(i: number, n: number): string {
  const pad = (k: number) => String(k).padStart(5, "0");
  return `model-${pad(i)}-of-${pad(n)}.safetensors`;
}

/**
 * Writes `dir`/model-0000i-of-0000N.safetensors shards of at most `maxShardBytes` of data each
 * (a larger tensor gets a shard of its own) and model.safetensors.index.json (HF layout).
 */
export async function writeSafetensorsSharded(
  dir: string,
  tensors: readonly WritableTensor[],
  maxShardBytes: number,
  metadata: Record<string, string> = { format: "pt" },
): Promise<void> {
  checkSpecs(join(dir, INDEX_FILE), tensors);
  const shards: WritableTensor[][] = [];
  let current: WritableTensor[] = [];
  let size = 0;
  let total = 0;
  for (const t of tensors) {
    const bytes = numel(t.shape) * DTYPE_BYTES[t.dtype];
    if (current.length > 0 && size + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += bytes;
    total += bytes;
  }
  if (current.length > 0 || shards.length === 0) shards.push(current);
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw describeFsError(err, dir);
  }
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const name = shardName(i + 1, shards.length);
    await writeSafetensors(join(dir, name), shard, metadata);
    for (const t of shard) weightMap[t.name] = name;
  }
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => a < b ? -1 : 1));
  const index = { metadata: { total_size: total }, weight_map: sorted };
  const text = new TextEncoder().encode(JSON.stringify(index, null, 2) + "\n");
  await writeAtomically(join(dir, INDEX_FILE), (out) => out.write(text));
}
