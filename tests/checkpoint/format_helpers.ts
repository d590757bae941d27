/**
 * Shared helpers of the checkpoint-format tests: a seeded PRNG, random tensors, temp folders.
 * @module
 */

import assert from "node:assert/strict";
import { InputError } from "../../lib/errors.ts";
import {
  type DType,
  DTYPE_BYTES,
  numel,
  type WritableTensor,
} from "../../lib/checkpoint/tensor.ts";

/** Every dtype. */
export const ALL_DTYPES = Object.keys(DTYPE_BYTES) as DType[];

/** A seeded 32-bit PRNG (mulberry32) returning uint32 values. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Random tensor bytes for `dtype` (BOOL as 0/1). */
export function randomBytes(
  next: () => number,
  dtype: DType,
  shape: readonly number[],
): Uint8Array {
  const out = new Uint8Array(numel(shape) * DTYPE_BYTES[dtype]);
  for (let i = 0; i < out.length; i++) out[i] = next() & 0xff;
  if (dtype === "BOOL") { for (let i = 0; i < out.length; i++) out[i] &= 1; }
  return out;
}

/** A writable tensor whose data is `bytes`, optionally streamed in chunks of `chunk` bytes. */
export function tensorOf(
  name: string,
  dtype: DType,
  shape: readonly number[],
  bytes: Uint8Array,
  chunk?: number,
): WritableTensor {
  return {
    name,
    dtype,
    shape,
    data: () => {
      if (!chunk) return bytes;
      return (async function* () {
        for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
      })();
    },
  };
}

/** Runs `body` with a fresh temp folder that is removed afterwards. */
export async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pg-formats-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts `fn` rejects with a one-line InputError whose message contains every `parts`. */
export async function assertInputError(
  fn: () => Promise<unknown>,
  ...parts: (string | RegExp)[]
): Promise<void> {
  await assert.rejects(fn, (err: unknown) => {
    if (!(err instanceof InputError)) throw new Error(`expected InputError, got ${err}`);
    const msg = err.message;
    assert.ok(!msg.includes("\n"), `message spans lines: ${msg}`);
    for (const p of parts) {
      const ok = typeof p === "string" ? msg.includes(p) : p.test(msg);
      assert.ok(ok, `message ${JSON.stringify(msg)} lacks ${p}`);
    }
    return true;
  });
}

/** Decodes base64 to bytes. */
export function fromB64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
