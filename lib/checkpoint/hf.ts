/**
 * HF PaliGemma folders: `config.json` plus safetensors (single file or sharded), read under the
 * canonical (legacy HF) tensor names.
 * @module
 */

import { readJsonFile } from "../json_file.ts";
import { join } from "node:path";
import { InputError } from "../errors.ts";
import { type PaliGemmaConfig, parseHfConfig } from "../model/config.ts";
import { detectLayout, expectedTensorList, type NameLayout } from "../model/names.ts";
import { renameTensor } from "./transform.ts";
import type { TensorRef, TensorStore } from "./tensor.ts";

/** Reads and parses `<dir>/config.json`. */
export async function readHfConfig(dir: string): Promise<PaliGemmaConfig> {
  const path = join(dir, "config.json");
  return parseHfConfig(await readJsonFile(path), path);
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** The canonical tensors of an HF store and the name layout they were recognised in. */
export interface HfTensors {
  /** Canonical name → tensor (renamed when stored under another name). */
  readonly tensors: Map<string, TensorRef>;
  /** The recognised layout (see NAME_LAYOUTS in lib/model/names.ts). */
  readonly layout: NameLayout;
}

/**
 * The canonical tensors of an HF safetensors store, checked against `config`: the name layout is
 * recognised from the stored names (every layout transformers has written, see NAME_LAYOUTS),
 * then every expected tensor must be present with the expected shape. A tied config ignores any
 * stored lm_head; tensors outside the model are left out.
 */
export function hfTensorsWithLayout(store: TensorStore, config: PaliGemmaConfig): HfTensors {
  const expected = expectedTensorList(config);
  const match = detectLayout(store.names(), expected.map((e) => e.name));
  if (match.missing.length > 0) {
    const more = match.missing.length > 1 ? ` (and ${match.missing.length - 1} more)` : "";
    throw new InputError(
      `${store.path}: missing tensor ${match.missing[0]}${more}; the names are closest to the ` +
        `${match.layout.id} layout (${match.layout.writtenBy})`,
    );
  }
  const tensors = new Map<string, TensorRef>();
  for (const want of expected) {
    const ref = store.get(match.names.get(want.name)!)!;
    if (ref.shape.length !== want.shape.length || ref.shape.some((d, i) => d !== want.shape[i])) {
      throw new InputError(
        `${store.path}: tensor ${ref.name} shape ${fmt(ref.shape)} does not fit the config: ` +
          `expected ${fmt(want.shape)}`,
      );
    }
    tensors.set(want.name, ref.name === want.name ? ref : renameTensor(want.name, ref));
  }
  return { tensors, layout: match.layout };
}

/** The canonical tensors of an HF safetensors store (see {@link hfTensorsWithLayout}). */
export function hfTensors(store: TensorStore, config: PaliGemmaConfig): Map<string, TensorRef> {
  return hfTensorsWithLayout(store, config).tensors;
}
