/**
 * Opening a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) against a
 * base model's canonical tensors: every stored key is mapped to the base tensor it changes and
 * checked (shapes, rank, targeting), giving per-tensor edits for `mergedTensor`.
 * @module
 */

import { readJsonFile } from "../json_file.ts";
import * as fs from "node:fs";
import { join } from "node:path";
import { openSafetensors } from "../checkpoint/safetensors.ts";
import type { TensorRef, TensorStore } from "../checkpoint/tensor.ts";
import { describeFsError, InputError } from "../errors.ts";
import { LM_HEAD } from "../model/names.ts";
import { type LoraConfig, parseLoraConfig } from "./config.ts";
import {
  baseTensorName,
  isModuleToSave,
  isTargeted,
  loraScaling,
  parseAdapterKey,
  rankAndAlpha,
  unmatchedTargets,
} from "./keys.ts";
import type { TensorEdit } from "./merge.ts";
import { isFloatDType } from "./round.ts";

/** The adapter's configuration file name. */
export const ADAPTER_CONFIG = "adapter_config.json";
/** The adapter's weights file name (PEFT's safe_serialization default). */
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

/** An opened adapter: its edits to the base tensors, by canonical name. */
export interface LoraAdapter {
  /** The adapter folder. */
  readonly dir: string;
  /** Its configuration. */
  readonly config: LoraConfig;
  /** Canonical base tensor name → this adapter's edit of it. */
  readonly edits: ReadonlyMap<string, TensorEdit>;
  /** Number of LoRA-adapted linear layers. */
  readonly loraLayers: number;
  /** Number of base tensors replaced by stored ones (modules_to_save). */
  readonly replaced: number;
  /** Settings PEFT itself ignores for this model, worded for a log line. */
  readonly notes: readonly string[];
  /** Closes the weights file. */
  close(): void;
}

/** Whether the base tensor `name` belongs to a linear layer (2-D and not an embedding table). */
function isLinearWeight(name: string, ref: TensorRef): boolean {
  return ref.shape.length === 2 && name.endsWith(".weight") &&
    !name.endsWith("embed_tokens.weight") && !name.endsWith("position_embedding.weight");
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Reads and parses `<dir>/adapter_config.json`. */
async function readConfig(dir: string): Promise<LoraConfig> {
  const path = join(dir, ADAPTER_CONFIG);
  return parseLoraConfig(await readJsonFile(path), path);
}

/** Opens `<dir>/adapter_model.safetensors`, wording a pickle-only adapter. */
async function openWeights(dir: string): Promise<TensorStore> {
  const path = join(dir, ADAPTER_WEIGHTS);
  if (!fs.existsSync(path) && fs.existsSync(join(dir, "adapter_model.bin"))) {
    throw new InputError(
      `${path}: missing (adapter_model.bin, a PyTorch pickle, is not read; save the adapter ` +
        "with safe_serialization=True)",
    );
  }
  try {
    return await openSafetensors(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
}

/** A LoRA module's two stored matrices. */
interface LoraPair {
  a?: TensorRef;
  b?: TensorRef;
}

/** Splits the stored keys into LoRA pairs by module and full weights by key; refuses the rest. */
function groupKeys(store: TensorStore, path: string) {
  const loras = new Map<string, LoraPair>();
  const full: { module: string; param: string; ref: TensorRef }[] = [];
  for (const key of store.names()) {
    const ref = store.get(key)!;
    const k = parseAdapterKey(key);
    if (k.kind === "unsupported") {
      throw new InputError(
        `${path}: tensor ${key}: '${k.what}' weights are not supported ` +
          "(only lora_A.weight / lora_B.weight of linear layers and full module weights)",
      );
    }
    if (!isFloatDType(ref.dtype)) {
      throw new InputError(`${path}: tensor ${key} is ${ref.dtype}, expected a float type`);
    }
    if (k.kind === "full") {
      full.push({ module: k.module, param: k.param, ref });
      continue;
    }
    const pair = loras.get(k.module) ?? {};
    pair[k.kind === "lora_A" ? "a" : "b"] = ref;
    loras.set(k.module, pair);
  }
  return { loras, full };
}

/** Module names of the base (every canonical tensor name without its parameter). */
function baseModules(base: ReadonlyMap<string, TensorRef>): Set<string> {
  const out = new Set<string>();
  for (const name of base.keys()) out.add(name.slice(0, name.lastIndexOf(".")));
  return out;
}

/** The edit of one LoRA module, checked against the base and the config. */
function loraEdit(
  cfg: LoraConfig,
  path: string,
  module: string,
  pair: LoraPair,
  base: ReadonlyMap<string, TensorRef>,
  userScale: number,
): { name: string; edit: TensorEdit } {
  const key = (m: "A" | "B") => `${module}.lora_${m}.weight`;
  if (!pair.a || !pair.b) {
    throw new InputError(`${path}: ${key(pair.a ? "B" : "A")} is missing (${module} has only one)`);
  }
  const name = baseTensorName(module, "weight");
  const w = base.get(name);
  if (!w) {
    throw new InputError(
      `${path}: ${key("A")} adapts ${module}, which the base model does not have (${name})`,
    );
  }
  const linear = isLinearWeight(name, w);
  if (!linear) {
    throw new InputError(`${path}: ${key("A")} adapts ${module}, which is not a linear layer`);
  }
  if (!isTargeted(cfg, module, () => linear && name !== LM_HEAD)) {
    throw new InputError(
      `${path}: ${key("A")} adapts ${module}, which field 'target_modules'` +
        `${cfg.exclude ? " (with 'exclude_modules')" : ""} of ${cfg.path} does not select`,
    );
  }
  const [out, inp] = w.shape;
  const [r, aIn] = pair.a.shape;
  if (pair.a.shape.length !== 2 || aIn !== inp) {
    throw new InputError(
      `${path}: ${key("A")} has shape ${fmt(pair.a.shape)}, expected [r, ${inp}] for ${name}`,
    );
  }
  if (pair.b.shape.length !== 2 || pair.b.shape[0] !== out || pair.b.shape[1] !== r) {
    throw new InputError(
      `${path}: ${key("B")} has shape ${fmt(pair.b.shape)}, expected [${out}, ${r}]`,
    );
  }
  const want = rankAndAlpha(cfg, module).r;
  if (r !== want) {
    const field = cfg.rankPattern.size > 0 ? "r' / 'rank_pattern" : "r";
    throw new InputError(
      `${cfg.path}: field '${field}' gives ${module} rank ${want}, but ${key("A")} has rank ${r}`,
    );
  }
  return {
    name,
    edit: { kind: "lora", a: pair.a, b: pair.b, scale: loraScaling(cfg, module) * userScale },
  };
}

/**
 * Opens the adapter in `dir` against the base tensors `base` (canonical names), scaling every
 * LoRA update by `scale` on top of the adapter's own alpha/r. Missing files, a bad config, a key
 * that maps to no base tensor, a misshapen matrix or a target the base lacks are InputErrors
 * naming the file and the field or tensor.
 */
export async function openLoraAdapter(
  dir: string,
  base: ReadonlyMap<string, TensorRef>,
  scale = 1,
): Promise<LoraAdapter> {
  const cfg = await readConfig(dir);
  const store = await openWeights(dir);
  try {
    const path = join(dir, ADAPTER_WEIGHTS);
    const { loras, full } = groupKeys(store, path);
    const missing = unmatchedTargets(cfg, [...baseModules(base), ...loras.keys()]);
    if (missing.length > 0) {
      throw new InputError(
        `${cfg.path}: field 'target_modules': ${missing.map((m) => `'${m}'`).join(", ")} ` +
          "matches no module of the base model",
      );
    }
    const edits = new Map<string, TensorEdit>();
    const add = (name: string, edit: TensorEdit, key: string) => {
      if (edits.has(name)) throw new InputError(`${path}: ${key} changes ${name} a second time`);
      edits.set(name, edit);
    };
    for (const [module, pair] of loras) {
      const { name, edit } = loraEdit(cfg, path, module, pair, base, scale);
      add(name, edit, `${module}.lora_A.weight`);
    }
    for (const { module, param, ref } of full) {
      const name = baseTensorName(module, param);
      const w = base.get(name);
      if (!w) {
        throw new InputError(
          `${path}: tensor ${ref.name} replaces ${name}, which the base model does not have`,
        );
      }
      if (w.shape.length !== ref.shape.length || w.shape.some((d, i) => d !== ref.shape[i])) {
        throw new InputError(
          `${path}: tensor ${ref.name} has shape ${fmt(ref.shape)}, the base's ${name} ` +
            `${fmt(w.shape)}`,
        );
      }
      if (!isFloatDType(w.dtype)) {
        throw new InputError(`${path}: cannot replace ${name}, which is ${w.dtype}`);
      }
      add(name, { kind: "replace", ref }, ref.name);
    }
    for (const m of cfg.modulesToSave) {
      if (!full.some((f) => isModuleToSave({ ...cfg, modulesToSave: [m] }, f.module))) {
        throw new InputError(
          `${cfg.path}: field 'modules_to_save' names '${m}', but ${path} holds no weights for it`,
        );
      }
    }
    const notes = cfg.fanInFanOut
      ? [
        "fan_in_fan_out is set, but every PaliGemma layer is an nn.Linear ([out, in]); PEFT turns " +
        "it off for those, and so does this merge",
      ]
      : [];
    return {
      dir,
      config: cfg,
      edits,
      loraLayers: loras.size,
      replaced: full.length,
      notes,
      close: () => store.close(),
    };
  } catch (err) {
    store.close();
    throw err;
  }
}
