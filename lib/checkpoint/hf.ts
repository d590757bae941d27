/**
 * HF PaliGemma folders: `config.json` plus safetensors (single file or sharded), read under the
 * canonical (legacy HF) tensor names.
 * @module
 */

import { join } from "node:path";
import { describeFsError, InputError } from "../errors.ts";
import { type PaliGemmaConfig, parseHfConfig } from "../model/config.ts";
import { canonicalName, expectedTensorList } from "../model/names.ts";
import { renameTensor } from "./transform.ts";
import type { TensorRef, TensorStore } from "./tensor.ts";

/** Reads and parses `<dir>/config.json`. */
export async function readHfConfig(dir: string): Promise<PaliGemmaConfig> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(`${path}: not valid JSON (${why})`);
  }
  return parseHfConfig(json, path);
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/**
 * The canonical tensors of an HF safetensors store, checked against `config`: every expected
 * tensor present with the expected shape. Names in HF >= 4.52 style are renamed; a tied config
 * ignores any stored lm_head; tensors outside the model are left out.
 */
export function hfTensors(store: TensorStore, config: PaliGemmaConfig): Map<string, TensorRef> {
  const byCanonical = new Map<string, TensorRef>();
  for (const name of store.names()) {
    const canonical = canonicalName(name);
    if (!byCanonical.has(canonical)) byCanonical.set(canonical, store.get(name)!);
  }
  const tensors = new Map<string, TensorRef>();
  for (const want of expectedTensorList(config)) {
    const ref = byCanonical.get(want.name);
    if (!ref) throw new InputError(`${store.path}: missing tensor ${want.name}`);
    if (ref.shape.length !== want.shape.length || ref.shape.some((d, i) => d !== want.shape[i])) {
      throw new InputError(
        `${store.path}: tensor ${ref.name} shape ${fmt(ref.shape)} does not fit the config: ` +
          `expected ${fmt(want.shape)}`,
      );
    }
    tensors.set(want.name, ref.name === want.name ? ref : renameTensor(want.name, ref));
  }
  return tensors;
}
