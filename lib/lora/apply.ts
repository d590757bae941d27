/**
 * Merging PEFT LoRA adapters into a checkpoint's canonical tensors while it is converted: the
 * tensors map is wrapped so that reading an adapted tensor returns the merged one, computed on
 * read (nothing is held twice).
 * @module
 */

import type { TensorRef } from "../checkpoint/tensor.ts";
import { InputError } from "../errors.ts";
import { type LoraAdapter, openLoraAdapter } from "./adapter.ts";
import { mergedTensor, type TensorEdit } from "./merge.ts";
import { isFloatDType } from "./round.ts";

/** Base tensors with adapters merged in, and the opened adapters (to close after converting). */
export interface MergedTensors {
  /** Canonical name → tensor; adapted ones are merged on read. */
  readonly tensors: Map<string, TensorRef>;
  /** The adapters, in the order they were applied. */
  readonly adapters: readonly LoraAdapter[];
  /** Closes every adapter's weights file. */
  close(): void;
}

/**
 * `base` with the adapters in `dirs` merged, in that order (a later adapter's LoRA adds to what the
 * earlier ones made; a stored full weight replaces it). `scale` multiplies every adapter's
 * alpha/r. Errors are InputErrors naming the adapter file and field or tensor.
 */
export async function mergeLoraAdapters(
  base: ReadonlyMap<string, TensorRef>,
  dirs: readonly string[],
  scale = 1,
): Promise<MergedTensors> {
  if (!Number.isFinite(scale)) throw new RangeError(`LoRA scale must be finite, got ${scale}`);
  const adapters: LoraAdapter[] = [];
  const close = () => adapters.forEach((a) => a.close());
  try {
    for (const dir of dirs) adapters.push(await openLoraAdapter(dir, base, scale));
    const edits = new Map<string, TensorEdit[]>();
    for (const a of adapters) {
      for (const [name, edit] of a.edits) edits.set(name, [...(edits.get(name) ?? []), edit]);
    }
    const tensors = new Map(base);
    for (const [name, list] of edits) {
      const ref = base.get(name)!;
      if (!isFloatDType(ref.dtype)) {
        throw new InputError(
          `${ref.name}: is ${ref.dtype}; adapters merge into float tensors only`,
        );
      }
      tensors.set(name, mergedTensor(ref, list));
    }
    return { tensors, adapters, close };
  } catch (err) {
    close();
    throw err;
  }
}
