/**
 * The library's one canonical tensor naming: HF's legacy PaliGemma names
 * (`vision_tower.vision_model.…`, `multi_modal_projector.linear.*`, `language_model.model.…`,
 * `language_model.lm_head.weight` when untied), and the tensors a config demands.
 * @module
 */

import { isTied, type PaliGemmaConfig } from "./config.ts";

/** The three parts of the model that parameter counts are reported for. */
export type ModelPart = "vision" | "projector" | "text";

/** A canonical tensor a config demands. */
export interface ExpectedTensor {
  /** Canonical (legacy HF) name. */
  readonly name: string;
  /** Shape the config demands, row-major. */
  readonly shape: readonly number[];
  /** Model part it belongs to. */
  readonly part: ModelPart;
}

/** Canonical prefix of the vision tower. */
export const VISION_PREFIX = "vision_tower.vision_model.";
/** Canonical prefix of the projector. */
export const PROJECTOR_PREFIX = "multi_modal_projector.";
/** Canonical prefix of the Gemma decoder. */
export const TEXT_PREFIX = "language_model.model.";
/** Canonical name of an untied LM head. */
export const LM_HEAD = "language_model.lm_head.weight";

/**
 * One way transformers has named PaliGemma's tensors in a safetensors file: each stored prefix with
 * the canonical prefix it stands for. A name that starts with none of the prefixes is outside the
 * model under that layout.
 */
export interface NameLayout {
  /** Short id, e.g. `legacy`. */
  readonly id: string;
  /** Which transformers versions (and classes) write it. */
  readonly writtenBy: string;
  /** Stored prefix → canonical prefix; the first that matches a name is used. */
  readonly prefixes: readonly (readonly [string, string])[];
}

const V = VISION_PREFIX;
const P = PROJECTOR_PREFIX;
const T = TEXT_PREFIX;
const HEAD = "language_model.lm_head.";

/**
 * Every tensor-name layout transformers has written for PaliGemma, as data. A checkpoint's layout
 * is recognised from its names (see {@link detectLayout}), never assumed from a version field.
 */
export const NAME_LAYOUTS: readonly NameLayout[] = [
  {
    id: "legacy",
    writtenBy: "save_pretrained of transformers 4.x and 5.x (4.52+ and 5.24 convert their module " +
      "names back to these), and the hub's files",
    prefixes: [[V, V], [P, P], [T, T], [HEAD, HEAD]],
  },
  {
    id: "4.52-modules",
    writtenBy: "the module names of transformers 4.52-4.57 PaliGemmaForConditionalGeneration " +
      "(a state_dict() saved as it is)",
    prefixes: [
      ["model.vision_tower.vision_model.", V],
      ["model.multi_modal_projector.", P],
      ["model.language_model.", T],
      ["lm_head.", HEAD],
    ],
  },
  {
    id: "4.52-base",
    writtenBy: "the module names of transformers 4.52-4.57 PaliGemmaModel (no `model.` prefix, " +
      "no LM head)",
    prefixes: [["vision_tower.vision_model.", V], [P, P], ["language_model.", T]],
  },
  {
    id: "5-modules",
    writtenBy: "the module names of transformers 5.x PaliGemmaForConditionalGeneration (a " +
      "state_dict() saved as it is; peft adapters after `base_model.model.`): no `vision_model.`",
    prefixes: [
      ["model.vision_tower.", V],
      ["model.multi_modal_projector.", P],
      ["model.language_model.", T],
      ["lm_head.", HEAD],
    ],
  },
  {
    id: "5-base",
    writtenBy:
      "the module names of transformers 5.x PaliGemmaModel (no `model.` prefix, no LM head)",
    prefixes: [["vision_tower.", V], [P, P], ["language_model.", T]],
  },
];

/** The canonical name of a stored name under `layout`, or undefined when it is outside the model. */
export function mapName(name: string, layout: NameLayout): string | undefined {
  for (const [from, to] of layout.prefixes) {
    if (name.startsWith(from)) return to + name.slice(from.length);
  }
  return undefined;
}

/**
 * Maps one HF tensor name to the canonical name under the first layout of NAME_LAYOUTS that has a
 * prefix for it (a guess for a single name; whole checkpoints use {@link detectLayout}).
 */
export function canonicalName(name: string): string {
  for (const layout of NAME_LAYOUTS) {
    const mapped = mapName(name, layout);
    if (mapped !== undefined) return mapped;
  }
  return name;
}

/** The layout a set of stored names follows, and what it lacks. */
export interface LayoutMatch {
  /** The layout that finds the most of the wanted canonical names (the first on a tie). */
  readonly layout: NameLayout;
  /** Canonical name → stored name, for the names of this layout. */
  readonly names: ReadonlyMap<string, string>;
  /** Wanted canonical names the layout does not find (empty when it fits). */
  readonly missing: readonly string[];
}

/**
 * Recognises the layout of `stored` names: the first layout of NAME_LAYOUTS under which every
 * `wanted` canonical name is present, else the one that finds the most (with `missing` listing
 * what it lacks). A stored name that two prefixes of one layout would both claim keeps the first.
 */
export function detectLayout(
  stored: Iterable<string>,
  wanted: readonly string[],
): LayoutMatch {
  const list = [...stored];
  let best: LayoutMatch | undefined;
  for (const layout of NAME_LAYOUTS) {
    const names = new Map<string, string>();
    for (const name of list) {
      const canonical = mapName(name, layout);
      if (canonical !== undefined && !names.has(canonical)) names.set(canonical, name);
    }
    const missing = wanted.filter((w) => !names.has(w));
    if (missing.length === 0) return { layout, names, missing };
    if (best === undefined || missing.length < best.missing.length) {
      best = { layout, names, missing };
    }
  }
  return best!;
}

/** Which part a canonical name belongs to, or undefined for a name outside the model. */
export function partOf(name: string): ModelPart | undefined {
  if (name.startsWith(VISION_PREFIX)) return "vision";
  if (name.startsWith(PROJECTOR_PREFIX)) return "projector";
  if (name.startsWith(TEXT_PREFIX) || name === LM_HEAD) return "text";
  return undefined;
}

/** Every canonical tensor of a config with its shape, grouped by part (vision, projector, text). */
export function expectedTensors(config: PaliGemmaConfig): Record<ModelPart, ExpectedTensor[]> {
  const { vision: v, text: t } = config;
  const out: Record<ModelPart, ExpectedTensor[]> = { vision: [], projector: [], text: [] };
  const add = (part: ModelPart, name: string, ...shape: number[]) =>
    out[part].push({ name, shape, part });

  const vp = VISION_PREFIX;
  const w = v.hiddenSize;
  add("vision", `${vp}embeddings.patch_embedding.weight`, w, 3, v.patchSize, v.patchSize);
  add("vision", `${vp}embeddings.patch_embedding.bias`, w);
  add("vision", `${vp}embeddings.position_embedding.weight`, config.numImageTokens, w);
  for (let i = 0; i < v.numLayers; i++) {
    const p = `${vp}encoder.layers.${i}.`;
    add("vision", `${p}layer_norm1.weight`, w);
    add("vision", `${p}layer_norm1.bias`, w);
    for (const proj of ["q_proj", "k_proj", "v_proj"]) {
      add("vision", `${p}self_attn.${proj}.weight`, w, w);
      add("vision", `${p}self_attn.${proj}.bias`, w);
    }
    add("vision", `${p}self_attn.out_proj.weight`, w, w);
    add("vision", `${p}self_attn.out_proj.bias`, w);
    add("vision", `${p}layer_norm2.weight`, w);
    add("vision", `${p}layer_norm2.bias`, w);
    add("vision", `${p}mlp.fc1.weight`, v.intermediateSize, w);
    add("vision", `${p}mlp.fc1.bias`, v.intermediateSize);
    add("vision", `${p}mlp.fc2.weight`, w, v.intermediateSize);
    add("vision", `${p}mlp.fc2.bias`, w);
  }
  add("vision", `${vp}post_layernorm.weight`, w);
  add("vision", `${vp}post_layernorm.bias`, w);

  add("projector", `${PROJECTOR_PREFIX}linear.weight`, config.projectionDim, w);
  add("projector", `${PROJECTOR_PREFIX}linear.bias`, config.projectionDim);

  const tp = TEXT_PREFIX;
  const d = t.hiddenSize;
  add("text", `${tp}embed_tokens.weight`, t.vocabSize, d);
  for (let i = 0; i < t.numLayers; i++) {
    const p = `${tp}layers.${i}.`;
    add("text", `${p}input_layernorm.weight`, d);
    add("text", `${p}self_attn.q_proj.weight`, t.numHeads * t.headDim, d);
    add("text", `${p}self_attn.k_proj.weight`, t.numKvHeads * t.headDim, d);
    add("text", `${p}self_attn.v_proj.weight`, t.numKvHeads * t.headDim, d);
    add("text", `${p}self_attn.o_proj.weight`, d, t.numHeads * t.headDim);
    add("text", `${p}post_attention_layernorm.weight`, d);
    if (t.variant === "gemma2") {
      add("text", `${p}pre_feedforward_layernorm.weight`, d);
      add("text", `${p}post_feedforward_layernorm.weight`, d);
    }
    add("text", `${p}mlp.gate_proj.weight`, t.intermediateSize, d);
    add("text", `${p}mlp.up_proj.weight`, t.intermediateSize, d);
    add("text", `${p}mlp.down_proj.weight`, d, t.intermediateSize);
  }
  add("text", `${tp}norm.weight`, d);
  if (!isTied(config)) add("text", LM_HEAD, t.vocabSize, d);
  return out;
}

/** The expected tensors of every part in one list: vision, then projector, then text. */
export function expectedTensorList(config: PaliGemmaConfig): ExpectedTensor[] {
  const g = expectedTensors(config);
  return [...g.vision, ...g.projector, ...g.text];
}
