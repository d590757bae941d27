/**
 * PEFT's names: the keys of a saved adapter (`base_model.model.<module>.lora_A.weight`, adapter
 * name stripped on save; modules_to_save and other stored weights as `base_model.model.<module>.
 * <param>`), their canonical base tensors (through the model's one canonical-name function), and
 * PEFT's rules for which modules a config targets and which rank and alpha each gets.
 * @module
 */

import { canonicalName } from "../model/names.ts";
import type { LoraConfig, ModuleSelector } from "./config.ts";

/** Prefix PEFT puts before every module path of a LoRA adapter. */
export const PEFT_PREFIX = "base_model.model.";

/** One key of adapter_model.safetensors, taken apart. */
export type AdapterKey =
  | {
    /** lora_A ([r, in]) or lora_B ([out, r]) of a LoRA module. */
    readonly kind: "lora_A" | "lora_B";
    /** Module path as PEFT names it (the transformers model's own module name). */
    readonly module: string;
  }
  | {
    /** A full weight that replaces the base one (modules_to_save, saved embeddings). */
    readonly kind: "full";
    /** Module path as PEFT names it. */
    readonly module: string;
    /** Parameter name (weight, bias). */
    readonly param: string;
  }
  | {
    /** A LoRA-family weight merging does not implement (embedding LoRA, DoRA, lora_B bias, …). */
    readonly kind: "unsupported";
    /** The part of the key that says what it is. */
    readonly what: string;
  };

/** Takes a saved adapter key apart (PEFT's `base_model.model.` prefix is optional). */
export function parseAdapterKey(key: string): AdapterKey {
  const path = key.startsWith(PEFT_PREFIX) ? key.slice(PEFT_PREFIX.length) : key;
  const parts = path.split(".");
  const lora = parts.findIndex((p) => p.startsWith("lora_"));
  if (lora >= 0) {
    const tail = parts.slice(lora).join(".");
    if (lora > 0 && (tail === "lora_A.weight" || tail === "lora_B.weight")) {
      return { kind: parts[lora] as "lora_A" | "lora_B", module: parts.slice(0, lora).join(".") };
    }
    return { kind: "unsupported", what: tail };
  }
  if (parts.length < 2 || parts.includes("modules_to_save") || parts.includes("base_layer")) {
    return { kind: "unsupported", what: path };
  }
  return { kind: "full", module: parts.slice(0, -1).join("."), param: parts[parts.length - 1] };
}

/** The canonical base tensor of PEFT module path `module` and parameter `param`. */
export function baseTensorName(module: string, param: string): string {
  return canonicalName(`${module}.${param}`);
}

/** `^(?:pattern)$`: Python's re.fullmatch as a JavaScript RegExp. */
function fullmatch(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

/** Whether `selector` (names or a regex; not all-linear) selects module name `key`, PEFT's way. */
function selects(selector: ModuleSelector, key: string): boolean {
  if (selector.kind === "regex") return fullmatch(selector.pattern).test(key);
  if (selector.kind === "names") {
    return selector.names.some((n) => key === n || key.endsWith(`.${n}`));
  }
  return false;
}

/** The layer index PEFT reads from `key` for layers_to_transform, or undefined. */
function layerIndex(cfg: LoraConfig, key: string): number | undefined {
  const patterns = cfg.layersPattern ?? [];
  const res = patterns.length === 0
    ? [/^.*?\.[^.]*\.(\d+)\./]
    : patterns.map((p) => new RegExp(`^.*?\\.${p}\\.(\\d+)\\.`));
  for (const re of res) {
    const m = re.exec(key);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Whether module `key` is one of the config's modules_to_save (PEFT never puts LoRA there). */
export function isModuleToSave(cfg: LoraConfig, key: string): boolean {
  return cfg.modulesToSave.some((m) => new RegExp(`^(?:^|.*\\.)${m}(?:$|\\..*)`).test(key));
}

/**
 * Whether PEFT puts LoRA on module `key` (its name in the transformers model) under `cfg`: not
 * excluded, not a module to save, selected by target_modules — a listed name matches exactly or
 * as a `.`-suffix, then layers_to_transform limits suffix matches to those layers; a string is a
 * full-match regex. `isLinear` answers for 'all-linear' (every linear layer but the LM head).
 */
export function isTargeted(cfg: LoraConfig, key: string, isLinear: () => boolean): boolean {
  if (cfg.exclude && selects(cfg.exclude, key)) return false;
  if (isModuleToSave(cfg, key)) return false;
  const t = cfg.targets;
  if (t.kind === "all-linear") return isLinear();
  if (t.kind === "regex") return selects(t, key);
  if (t.names.includes(key)) return true;
  if (!selects(t, key)) return false;
  if (cfg.layersToTransform === undefined) return true;
  const i = layerIndex(cfg, key);
  return i !== undefined && cfg.layersToTransform.includes(i);
}

/** The first pattern of `patterns` that matches the end of `key` at a `.` boundary, PEFT's way. */
function patternValue(patterns: ReadonlyMap<string, number>, key: string): number | undefined {
  for (const [p, v] of patterns) {
    if (new RegExp(`^(?:.*\\.)?(?:${p})$`).test(key)) return v;
  }
  return undefined;
}

/** The rank and alpha PEFT gives module `key` (rank_pattern / alpha_pattern, else r / lora_alpha). */
export function rankAndAlpha(cfg: LoraConfig, key: string): { r: number; alpha: number } {
  return {
    r: patternValue(cfg.rankPattern, key) ?? cfg.r,
    alpha: patternValue(cfg.alphaPattern, key) ?? cfg.alpha,
  };
}

/** PEFT's scaling of a module: alpha/r, or alpha/√r with rsLoRA. */
export function loraScaling(cfg: LoraConfig, key: string): number {
  const { r, alpha } = rankAndAlpha(cfg, key);
  return cfg.useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * The entries of target_modules that select none of `modules` (module names the base model or
 * the adapter has, in either naming); a regex selecting nothing is returned whole.
 */
export function unmatchedTargets(cfg: LoraConfig, modules: Iterable<string>): string[] {
  const t = cfg.targets;
  const names = [...modules];
  if (t.kind === "all-linear") return [];
  if (t.kind === "regex") {
    const re = fullmatch(t.pattern);
    return names.some((m) => re.test(m)) ? [] : [t.pattern];
  }
  return t.names.filter((n) => {
    const canonical = canonicalName(n);
    return !names.some((m) => m === n || m === canonical || m.endsWith(`.${n}`));
  });
}
