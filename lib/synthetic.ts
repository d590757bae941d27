/**
 * Deterministic random-weight PaliGemma checkpoints of any config, in the HF safetensors layout
 * (+ config.json; sharded when large) and the big_vision `.npz` layout, written streaming with
 * flat memory. Values are defined per canonical tensor (seeded by name), so both layouts of one
 * config and seed hold the same weights.
 * @module
 */

import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { describeFsError, InputError } from "./errors.ts";
import { type PaliGemmaConfig, toHfConfigJson } from "./model/config.ts";
import { type ExpectedTensor, expectedTensorList, TEXT_PREFIX } from "./model/names.ts";
import { bigVisionLayout, type BigVisionMember } from "./checkpoint/bigvision.ts";
import { permuteBytes, permutedShape } from "./checkpoint/transform.ts";
import { writeNpz } from "./checkpoint/npz.ts";
import { writeSafetensors, writeSafetensorsSharded } from "./checkpoint/safetensors.ts";
import { DTYPE_BYTES, numel, type WritableTensor } from "./checkpoint/tensor.ts";

/** Element types synthetic checkpoints can hold. */
export type SyntheticDType = "F32" | "BF16";

/** Options shared by the synthetic writers. */
export interface SyntheticOptions {
  /** Element type (default BF16). */
  readonly dtype?: SyntheticDType;
  /** Seed of the weights (default 0). */
  readonly seed?: number;
}

const CHUNK_ELEMS = 1 << 22;

/** 32-bit FNV-1a of a string, mixed with a seed. */
function hashName(name: string, seed: number): number {
  let h = 0x811c9dc5 ^ Math.imul(seed | 0, 0x9e3779b1);
  for (let i = 0; i < name.length; i++) {
    h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

/** Centre and half-width of the uniform distribution a canonical tensor is drawn from. */
function spreadOf(name: string, shape: readonly number[]): { centre: number; half: number } {
  if (/layer_norm[12]\.weight$|post_layernorm\.weight$/.test(name)) return { centre: 1, half: 0.1 };
  if (name.startsWith(TEXT_PREFIX) && /norm\.weight$/.test(name)) return { centre: 0, half: 0.1 };
  if (name.endsWith(".bias")) return { centre: 0, half: 0.02 };
  if (shape.length < 2) return { centre: 0, half: 0.1 };
  if (/embed_tokens|position_embedding/.test(name)) return { centre: 0, half: 0.05 };
  return { centre: 0, half: Math.sqrt(3 / numel(shape.slice(1))) };
}

/**
 * The values of one canonical tensor as chunks of bytes in `dtype` (row-major, canonical
 * layout). A mulberry32 stream seeded by the name fills each chunk; bf16 rounds to nearest even.
 */
export function* syntheticChunks(
  name: string,
  shape: readonly number[],
  dtype: SyntheticDType,
  seed = 0,
  chunkElems = CHUNK_ELEMS,
): Generator<Uint8Array> {
  const total = numel(shape);
  const { centre, half } = spreadOf(name, shape);
  const scale = half * 2 ** -31;
  let state = hashName(name, seed);
  const scratch = new Float32Array(Math.min(total, chunkElems));
  const bits = new Uint32Array(scratch.buffer);
  for (let done = 0; done < total;) {
    const n = Math.min(chunkElems, total - done);
    for (let i = 0; i < n; i++) {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), state | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      t ^= t >>> 14;
      scratch[i] = centre + (t | 0) * scale;
    }
    if (dtype === "F32") {
      yield new Uint8Array(scratch.buffer.slice(0, n * 4));
    } else {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        const b = bits[i];
        out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      yield new Uint8Array(out.buffer);
    }
    done += n;
  }
}

/** All bytes of one canonical tensor (see syntheticChunks). */
export function syntheticBytes(
  name: string,
  shape: readonly number[],
  dtype: SyntheticDType,
  seed = 0,
): Uint8Array {
  const out = new Uint8Array(numel(shape) * DTYPE_BYTES[dtype]);
  let at = 0;
  for (const chunk of syntheticChunks(name, shape, dtype, seed)) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

async function* toAsync(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

/** Options of `writeSyntheticHf`. */
export interface SyntheticHfOptions extends SyntheticOptions {
  /** Shard when the data exceed this many bytes (default 2 GiB per shard). */
  readonly maxShardBytes?: number;
  /** Write HF >= 4.52 names (`model.language_model.…`) instead of the legacy ones. */
  readonly newNames?: boolean;
}

/** The HF >= 4.52 spelling of a canonical name. */
function newStyleName(name: string): string {
  const pairs: [string, string][] = [
    ["language_model.model.", "model.language_model."],
    ["vision_tower.", "model.vision_tower."],
    ["multi_modal_projector.", "model.multi_modal_projector."],
    ["language_model.lm_head.", "lm_head."],
  ];
  for (const [from, to] of pairs) if (name.startsWith(from)) return to + name.slice(from.length);
  return name;
}

/** Fails when `path` exists; synthetic writers never replace files. */
function refuseExisting(path: string): void {
  if (fs.existsSync(path)) throw new InputError(`${path}: already exists; not overwriting it`);
}

/**
 * Writes an HF PaliGemma folder (config.json + model.safetensors, or shards and
 * model.safetensors.index.json when larger than maxShardBytes) of random weights. The folder
 * is written under a temporary name and renamed when complete.
 */
export async function writeSyntheticHf(
  dir: string,
  config: PaliGemmaConfig,
  opts: SyntheticHfOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? "BF16";
  const seed = opts.seed ?? 0;
  const maxShard = opts.maxShardBytes ?? 2 * 1024 ** 3;
  refuseExisting(dir);
  const tmp = join(dirname(dir), `.${basename(dir)}.partial-${Deno.pid}`);
  const tensors: WritableTensor[] = expectedTensorList(config).map((t: ExpectedTensor) => ({
    name: opts.newNames ? newStyleName(t.name) : t.name,
    dtype,
    shape: t.shape,
    data: () => toAsync(syntheticChunks(t.name, t.shape, dtype, seed)),
  }));
  const total = tensors.reduce((s, t) => s + numel(t.shape) * DTYPE_BYTES[dtype], 0);
  try {
    Deno.mkdirSync(tmp, { recursive: true });
    const json = {
      ...toHfConfigJson(config),
      torch_dtype: dtype === "F32" ? "float32" : "bfloat16",
    };
    await Deno.writeTextFile(join(tmp, "config.json"), JSON.stringify(json, null, 2) + "\n");
    if (total > maxShard) await writeSafetensorsSharded(tmp, tensors, maxShard);
    else await writeSafetensors(join(tmp, "model.safetensors"), tensors, { format: "pt" });
    refuseExisting(dir);
    Deno.renameSync(tmp, dir);
  } catch (err) {
    try {
      Deno.removeSync(tmp, { recursive: true });
    } catch {
      // nothing was written
    }
    throw describeFsError(err, dir);
  }
}

/** Options of `writeSyntheticBigVision`. */
export interface SyntheticBigVisionOptions extends SyntheticOptions {
  /** Prefix of every member key (real checkpoints may carry `params/`; default none). */
  readonly prefix?: string;
}

/** The bytes of a big_vision member, one canonical piece (one layer slice) at a time. */
async function* memberChunks(
  m: BigVisionMember,
  dtype: SyntheticDType,
  seed: number,
): AsyncGenerator<Uint8Array> {
  const elem = DTYPE_BYTES[dtype];
  for (const p of m.pieces) {
    const perm = p.perm;
    if (!perm || perm.every((a, i) => a === i)) {
      yield* syntheticChunks(p.canonical, p.shape, dtype, seed);
      continue;
    }
    // canonical = transpose(block, perm).reshape(shape), so block = transpose(canonical, perm^-1).
    const block = m.shape.slice(p.index.length);
    const inverse = new Array<number>(perm.length);
    perm.forEach((a, k) => (inverse[a] = k));
    const canonical = syntheticBytes(p.canonical, p.shape, dtype, seed);
    yield permuteBytes(canonical, permutedShape(block, perm), inverse, elem);
  }
}

/**
 * Writes a big_vision `.npz` of random weights with the real member keys and shapes (stacked
 * scan layers), streaming one layer slice at a time. Holds the same weights as
 * `writeSyntheticHf` for the same config, dtype and seed.
 */
export async function writeSyntheticBigVision(
  path: string,
  config: PaliGemmaConfig,
  opts: SyntheticBigVisionOptions = {},
): Promise<void> {
  const dtype = opts.dtype ?? "BF16";
  const seed = opts.seed ?? 0;
  const prefix = opts.prefix ?? "";
  refuseExisting(path);
  const tensors: WritableTensor[] = bigVisionLayout(config).map((m) => ({
    name: prefix + m.key,
    dtype,
    shape: m.shape,
    data: () => memberChunks(m, dtype, seed),
  }));
  await writeNpz(path, tensors);
}
