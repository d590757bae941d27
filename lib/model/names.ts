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

/** Renames of HF >= 4.52 / transformers 5 names to the legacy ones, longest prefix first. */
const RENAMES: readonly [string, string][] = [
  ["model.language_model.", "language_model.model."],
  ["model.vision_tower.", "vision_tower."],
  ["model.multi_modal_projector.", "multi_modal_projector."],
  ["lm_head.", "language_model.lm_head."],
];

/** Maps an HF tensor name (legacy or HF >= 4.52 style) to the canonical name. */
export function canonicalName(name: string): string {
  for (const [from, to] of RENAMES) {
    if (name.startsWith(from)) return to + name.slice(from.length);
  }
  return name;
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
