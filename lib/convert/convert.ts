/**
 * The converter driver: writes the three ONNX graphs of one precision and the JSON configs of a
 * transformers.js model folder into a directory.
 * @module
 */

import { join } from "node:path";
import { numel } from "../checkpoint/tensor.ts";
import { describeFsError } from "../errors.ts";
import { OnnxModelWriter } from "../onnx/builder.ts";
import {
  generationConfigJson,
  type Json,
  modelConfigJson,
  preprocessorConfigJson,
  sourcePreprocessorJson,
} from "./configs.ts";
import { buildDecoderGraph } from "./decoder_graph.ts";
import { buildEmbedGraph, EMBED } from "./embed_graph.ts";
import {
  describeFormat,
  type LayerStorage,
  layerStorage,
  linearRole,
  type Precision,
  type QuantOptions,
  type WeightFormat,
  weightFormat,
} from "./layers.ts";
import type { ConvertSource } from "./source.ts";
import { buildVisionGraph } from "./vision_graph.ts";

import { PRECISION_SUFFIX } from "../model/precision.ts";

/** File-name suffix of each precision (re-exported for the converter's callers). */
export { PRECISION_SUFFIX };

/**
 * Graphs larger than this (estimated) keep their weights in ONNX external data (`<file>_data`,
 * 4 KiB-aligned), which ONNX Runtime memory-maps at load; weights inside the .onnx protobuf are
 * parsed and copied at every load instead (1.3-1.7 s for the full-size vision and embedding
 * graphs, BENCHMARKS.md "Load time"). Small test fixtures stay single files.
 */
export const EXTERNAL_DATA_BYTES = 64 * 1024 * 1024;

/** Options of `convertModel`. */
export interface ConvertOptions {
  /** Weight precision. */
  readonly precision: Precision;
  /** Estimated graph size above which external data is used (default EXTERNAL_DATA_BYTES). */
  readonly externalDataBytes?: number;
  /** Replaces parts of the default q8 / q4 settings (for experiments; see BENCHMARKS.md). */
  readonly quant?: Partial<QuantOptions>;
  /** Apply Gemma 2's final logit soft-cap (big_vision; HF 4.57 PaliGemma does not). */
  readonly finalSoftcap?: boolean;
  /** Receives one progress line at a time. */
  readonly log?: (line: string) => void;
}

/** What `convertModel` wrote. */
export interface ConvertResult {
  /** Paths relative to the output folder, in writing order. */
  readonly files: string[];
  /** `.onnx` basenames that have external data. */
  readonly externalData: string[];
}

/** Bytes per weight of a storage (codes, float scale, zero point; or the float itself). */
function storageBytes(s: LayerStorage): number {
  if (s === "fp32" || s === "fp16-as-fp32") return 4;
  if (s === "fp16") return 2;
  // Codes, one float32 scale per block and (asymmetric) one packed zero point per block.
  return s.bits / 8 + 4 / s.blockSize + (s.asymmetric ? s.bits / 8 / s.blockSize : 0);
}

/** Bytes per weight of checkpoint tensor `name` once written in `fmt`. */
function bytesPerWeight(fmt: WeightFormat, name: string): number {
  const isTable = name === EMBED || name.endsWith("lm_head.weight");
  if (isTable) {
    return fmt.quant
      ? storageBytes(fmt.quant.table)
      : storageBytes(fmt.precision === "fp16" ? "fp16" : "fp32");
  }
  const role = linearRole(name);
  return role ? storageBytes(layerStorage(fmt, role, name)) : 4;
}

/** Estimated bytes of the graph made from the tensors whose names satisfy `pick`. */
function estimate(
  src: ConvertSource,
  pick: (name: string) => boolean,
  fmt: WeightFormat,
): number {
  let n = 0;
  for (const [name, ref] of src.tensors) {
    if (pick(name)) n += numel(ref.shape) * bytesPerWeight(fmt, name);
  }
  return n;
}

/**
 * Estimated bytes of the three graphs `convertModel` writes for `src` at `precision`: every tensor
 * at the size it is stored in (a lower bound of the folder: configs, tokenizer and graph structure
 * come on top).
 */
export function estimateOutputBytes(
  src: ConvertSource,
  precision: Precision,
  quant?: Partial<QuantOptions>,
): number {
  return estimate(src, () => true, weightFormat(precision, quant));
}

/** Writes `onnx/{vision_encoder,embed_tokens,decoder_model_merged}<suffix>.onnx` and the configs. */
export async function convertModel(
  src: ConvertSource,
  outDir: string,
  opts: ConvertOptions,
): Promise<ConvertResult> {
  const p = opts.precision;
  const fmt = weightFormat(p, opts.quant);
  const log = opts.log ?? (() => {});
  const limit = opts.externalDataBytes ?? EXTERNAL_DATA_BYTES;
  const suffix = PRECISION_SUFFIX[p];
  const preprocessor = sourcePreprocessorJson(src.path, src.config);
  log(describeFormat(fmt));
  try {
    await Deno.mkdir(join(outDir, "onnx"), { recursive: true });
  } catch (err) {
    throw describeFsError(err, join(outDir, "onnx"), "creating the folder");
  }
  const files: string[] = [];
  const externalData: string[] = [];
  const isVision = (n: string) =>
    n.startsWith("vision_tower.") || n.startsWith("multi_modal_projector.");
  const isText = (n: string) =>
    n.startsWith("language_model.model.") && !n.endsWith("lm_head.weight");
  const graphs = [
    {
      name: "vision_encoder",
      size: estimate(src, isVision, fmt),
      unit: "layers",
      build: (g: OnnxModelWriter, step: (d: number, t: number) => void) =>
        buildVisionGraph(g, src, fmt, step),
    },
    {
      name: "embed_tokens",
      size: estimate(src, (n) => n === EMBED, fmt),
      unit: "rows",
      build: (g: OnnxModelWriter, step: (d: number, t: number) => void) =>
        buildEmbedGraph(g, src, fmt, step),
    },
    {
      name: "decoder_model_merged",
      size: estimate(src, isText, fmt),
      unit: "layers (the last is the LM head)",
      build: (g: OnnxModelWriter, step: (d: number, t: number) => void) =>
        buildDecoderGraph(g, src, fmt, step, opts.finalSoftcap ?? false),
    },
  ];
  for (const graph of graphs) {
    const file = `${graph.name}${suffix}.onnx`;
    const external = graph.size > limit;
    const g = await OnnxModelWriter.create(join(outDir, "onnx", file), {
      externalData: external,
      graphName: graph.name,
    });
    const started = performance.now();
    try {
      await graph.build(g, (done, total) => log(`${file}: ${done}/${total} ${graph.unit}`));
      await g.finish();
    } catch (err) {
      await g.abort();
      throw err;
    }
    files.push(`onnx/${file}`);
    if (external) {
      files.push(`onnx/${file}_data`);
      externalData.push(file);
    }
    log(`${file}: written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  const configs: [string, Json][] = [
    ["config.json", modelConfigJson(src.config, externalData)],
    ["generation_config.json", generationConfigJson(src.config)],
    ["preprocessor_config.json", preprocessorConfigJson(src.config, preprocessor)],
  ];
  for (const [name, json] of configs) {
    try {
      await Deno.writeTextFile(join(outDir, name), JSON.stringify(json, null, 2) + "\n");
    } catch (err) {
      throw describeFsError(err, join(outDir, name), "writing");
    }
    files.push(name);
  }
  return { files, externalData };
}
