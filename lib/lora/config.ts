/**
 * A PEFT LoRA adapter's `adapter_config.json`, read with PEFT's `LoraConfig` defaults for absent
 * fields. Settings that change what merging means and that are not implemented (DoRA, a LoRA bias,
 * trainable biases, target_parameters, …) are refused by name rather than ignored.
 * @module
 */

import { InputError } from "../errors.ts";

/** target_modules / exclude_modules: module names (exact or `.`-suffix) or one Python regex. */
export type ModuleSelector =
  | { readonly kind: "names"; readonly names: readonly string[] }
  | { readonly kind: "regex"; readonly pattern: string }
  | { readonly kind: "all-linear" };

/** The fields of adapter_config.json that merging uses. */
export interface LoraConfig {
  /** The file it was read from (for messages). */
  readonly path: string;
  /** Default rank. */
  readonly r: number;
  /** Default alpha. */
  readonly alpha: number;
  /** rsLoRA: scale alpha/√r instead of alpha/r. */
  readonly useRslora: boolean;
  /** Conv1D-style base weights; PEFT turns it off for nn.Linear targets (all of PaliGemma's). */
  readonly fanInFanOut: boolean;
  /** Which modules carry LoRA weights. */
  readonly targets: ModuleSelector;
  /** Modules never targeted (PEFT ≥ 0.14), or undefined. */
  readonly exclude?: ModuleSelector;
  /** Modules whose full weights the adapter stores and that replace the base ones. */
  readonly modulesToSave: readonly string[];
  /** Layer indices a names-style target is limited to, or undefined for all. */
  readonly layersToTransform?: readonly number[];
  /** Names of the layer lists layersToTransform indexes (undefined: any `<name>.<index>.`). */
  readonly layersPattern?: readonly string[];
  /** Per-module ranks: pattern (matched at the end of the module name) → r. */
  readonly rankPattern: ReadonlyMap<string, number>;
  /** Per-module alphas: pattern → alpha. */
  readonly alphaPattern: ReadonlyMap<string, number>;
}

type Json = Record<string, unknown>;

/** PEFT init_lora_weights values that change the base weights, so the adapter alone is not W + BA. */
const BASE_CHANGING_INITS = ["pissa", "olora", "corda", "loftq"];

/** A field of `path` that is not what PEFT writes there. */
function bad(path: string, field: string, why: string): InputError {
  return new InputError(`${path}: field '${field}' ${why}`);
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function present(json: Json, field: string): boolean {
  return json[field] !== undefined && json[field] !== null;
}

function positiveNumber(path: string, field: string, v: unknown, integer: boolean): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw bad(path, field, `must be a positive ${integer ? "integer" : "number"}, got ${show(v)}`);
  }
  return v;
}

function bool(path: string, json: Json, field: string): boolean {
  const v = json[field] ?? false;
  if (typeof v !== "boolean") throw bad(path, field, `must be true or false, got ${show(v)}`);
  return v;
}

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

function strings(path: string, field: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    throw bad(path, field, `must be a string or a list of strings, got ${show(v)}`);
  }
  return v as string[];
}

/** Checks that a Python regex compiles as a JavaScript one (the common subset). */
function checkRegex(path: string, field: string, pattern: string): void {
  try {
    new RegExp(pattern);
  } catch {
    throw bad(path, field, `is not a regular expression this reader understands: ${show(pattern)}`);
  }
}

function selector(path: string, field: string, v: unknown): ModuleSelector {
  if (typeof v === "string") {
    if (v.toLowerCase() === "all-linear") return { kind: "all-linear" };
    checkRegex(path, field, v);
    return { kind: "regex", pattern: v };
  }
  return { kind: "names", names: strings(path, field, v) };
}

function pattern(path: string, field: string, v: unknown, integer: boolean): Map<string, number> {
  const out = new Map<string, number>();
  if (v === undefined || v === null) return out;
  if (!isObject(v)) throw bad(path, field, `must be an object of pattern → number`);
  for (const [k, n] of Object.entries(v)) {
    checkRegex(path, field, k);
    out.set(k, positiveNumber(path, `${field}.${k}`, n, integer));
  }
  return out;
}

/** Refuses the settings whose merge is not W + scale·B·A (or is not implemented here). */
function refuseUnsupported(path: string, json: Json): void {
  const peftType = json.peft_type;
  if (peftType !== undefined && peftType !== "LORA") {
    throw bad(path, "peft_type", `is ${show(peftType)}: only LORA adapters can be merged`);
  }
  const bias = json.bias ?? "none";
  if (bias !== "none") {
    throw bad(path, "bias", `is ${show(bias)}: only "none" is supported (no trained biases)`);
  }
  const flags: [string, string][] = [
    ["use_dora", "DoRA adapters are not supported"],
    ["lora_bias", "a bias on lora_B is not supported"],
    ["use_qalora", "QA-LoRA adapters are not supported"],
  ];
  for (const [field, why] of flags) {
    if (json[field] !== undefined && json[field] !== null && json[field] !== false) {
      throw bad(path, field, `is ${show(json[field])}: ${why}`);
    }
  }
  const nonEmpty: [string, string][] = [
    ["target_parameters", "LoRA on parameters (not modules) is not supported"],
    ["trainable_token_indices", "trainable tokens are not supported"],
    ["layer_replication", "layer replication changes the model's layers; not supported"],
    ["alora_invocation_tokens", "activated LoRA cannot be merged into the weights"],
  ];
  for (const [field, why] of nonEmpty) {
    const v = json[field];
    const empty = v === undefined || v === null || (Array.isArray(v) && v.length === 0) ||
      (isObject(v) && Object.keys(v).length === 0);
    if (!empty) throw bad(path, field, `is set: ${why}`);
  }
  const init = json.init_lora_weights;
  if (typeof init === "string" && BASE_CHANGING_INITS.some((p) => init.startsWith(p))) {
    throw bad(
      path,
      "init_lora_weights",
      `is ${show(init)}: such adapters expect modified base weights; convert the adapter to ` +
        "a plain LoRA first (PEFT's path_initial_model_for_weight_conversion)",
    );
  }
}

/**
 * Reads the parsed adapter_config.json at `path` into a LoraConfig: types are checked field by
 * field (InputError naming the file and field), absent fields take PEFT's defaults (r 8,
 * lora_alpha 8, …), and unsupported settings are refused.
 */
export function parseLoraConfig(json: unknown, path: string): LoraConfig {
  if (!isObject(json)) throw new InputError(`${path}: not a JSON object`);
  refuseUnsupported(path, json);
  const r = positiveNumber(path, "r", json.r ?? 8, true);
  const alpha = positiveNumber(path, "lora_alpha", json.lora_alpha ?? 8, false);
  if (!present(json, "target_modules")) {
    throw bad(
      path,
      "target_modules",
      "is missing: the adapter does not say which modules it adapts",
    );
  }
  const targets = selector(path, "target_modules", json.target_modules);
  const exclude = present(json, "exclude_modules")
    ? selector(path, "exclude_modules", json.exclude_modules)
    : undefined;
  if (exclude?.kind === "all-linear") {
    throw bad(path, "exclude_modules", "cannot be 'all-linear'");
  }
  const modulesToSave = present(json, "modules_to_save")
    ? strings(path, "modules_to_save", json.modules_to_save)
    : [];
  let layersToTransform: number[] | undefined;
  const ltt = json.layers_to_transform;
  if (ltt !== undefined && ltt !== null) {
    const list = Array.isArray(ltt) ? ltt : [ltt];
    if (list.some((i) => typeof i !== "number" || !Number.isInteger(i) || i < 0)) {
      throw bad(path, "layers_to_transform", `must be a layer index or a list of them`);
    }
    // PEFT: an empty list means every layer.
    if (list.length > 0) layersToTransform = list as number[];
  }
  let layersPattern: string[] | undefined;
  const lp = json.layers_pattern;
  if (lp !== undefined && lp !== null && lp !== "") {
    layersPattern = typeof lp === "string" ? [lp] : strings(path, "layers_pattern", lp);
    for (const p of layersPattern) checkRegex(path, "layers_pattern", p);
    if (layersPattern.length === 0) layersPattern = undefined;
  }
  return {
    path,
    r,
    alpha,
    useRslora: bool(path, json, "use_rslora"),
    fanInFanOut: bool(path, json, "fan_in_fan_out"),
    targets,
    ...(exclude ? { exclude } : {}),
    modulesToSave,
    ...(layersToTransform ? { layersToTransform } : {}),
    ...(layersPattern ? { layersPattern } : {}),
    rankPattern: pattern(path, "rank_pattern", json.rank_pattern, true),
    alphaPattern: pattern(path, "alpha_pattern", json.alpha_pattern, false),
  };
}
