/**
 * `inspect`: a checkpoint's detected format, config, parameter counts per part, dtypes and bytes.
 * @module
 */

import { type Command, parseFlags } from "./command.ts";
import { UsageError } from "../lib/errors.ts";
import { type Checkpoint, openCheckpoint } from "../lib/checkpoint/open.ts";
import { describeConfig } from "../lib/model/config.ts";
import { expectedTensorList, type ModelPart, partOf } from "../lib/model/names.ts";
import { numel } from "../lib/checkpoint/tensor.ts";
import type { AssumedField } from "../lib/checkpoint/bigvision.ts";
import { writeOut } from "./stdout.ts";

const HELP = `Usage: pg inspect <checkpoint> [--json]

Prints the detected format (HF safetensors folder, big_vision .npz, ONNX folder), the model
config, parameter counts per part (vision, projector, text), dtypes and total bytes. Values a
big_vision .npz cannot store (PaliGemma 2 query scale, soft-caps, sliding window) are marked
"(assumed)" and listed under "assumed" in --json; 'pg convert --config' sets them.

Options:
  --json    one JSON object on stdout

Examples:
  pg inspect ~/models/paligemma2-3b-mix-224
  pg inspect pt_224.npz --json | jq .assumed`;

/** What `inspect` reports about a checkpoint (the `--json` object). */
export interface InspectReport {
  /** Path as given. */
  readonly path: string;
  /** `hf`, `big_vision` or `onnx`. */
  readonly format: Checkpoint["format"];
  /** The model config. */
  readonly config: Checkpoint["config"];
  /** Parameters per part and in total (for ONNX folders: what the config implies). */
  readonly parameters: Record<ModelPart | "total", number>;
  /** Tensor count per dtype (empty for ONNX folders). */
  readonly dtypes: Record<string, number>;
  /** Bytes of the canonical tensors, or of the .onnx files for ONNX folders. */
  readonly bytes: number;
  /** Canonical tensors (0 for ONNX folders). */
  readonly tensors: number;
  /**
   * Config fields that are published-model defaults, not read from the checkpoint (big_vision
   * PaliGemma 2: query scale, soft-caps, sliding window); absent when there are none.
   */
  readonly assumed?: readonly AssumedField[];
  /** ONNX folders: files under onnx/. */
  readonly onnxFiles?: readonly { name: string; bytes: number }[];
}

/** Builds the report for an open checkpoint. */
export function inspectReport(ckpt: Checkpoint): InspectReport {
  const parameters = { vision: 0, projector: 0, text: 0, total: 0 };
  const dtypes: Record<string, number> = {};
  let bytes = 0;
  if (ckpt.format === "onnx") {
    for (const t of expectedTensorList(ckpt.config)) parameters[t.part] += numel(t.shape);
    bytes = (ckpt.onnxFiles ?? []).reduce((s, f) => s + f.bytes, 0);
  } else {
    for (const [name, ref] of ckpt.tensors) {
      const part = partOf(name);
      if (part) parameters[part] += numel(ref.shape);
      dtypes[ref.dtype] = (dtypes[ref.dtype] ?? 0) + 1;
      bytes += ref.byteLength;
    }
  }
  parameters.total = parameters.vision + parameters.projector + parameters.text;
  return {
    path: ckpt.path,
    format: ckpt.format,
    config: ckpt.config,
    parameters,
    dtypes,
    bytes,
    tensors: ckpt.tensors.size,
    ...(ckpt.assumed && ckpt.assumed.length > 0 ? { assumed: ckpt.assumed } : {}),
    ...(ckpt.onnxFiles ? { onnxFiles: ckpt.onnxFiles } : {}),
  };
}

const FORMAT_NAMES: Record<Checkpoint["format"], string> = {
  hf: "HF safetensors folder",
  big_vision: "big_vision .npz",
  onnx: "ONNX model folder",
};

function count(n: number): string {
  return `${n.toLocaleString("en-US")} (${(n / 1e9).toFixed(3)} B)`;
}

/** Marks a value that the checkpoint does not state. */
const ASSUMED = "(assumed)";

/** The human-readable form of a report. */
export function formatReport(r: InspectReport): string {
  const { vision: v, text: t } = r.config;
  const assumed = new Set<AssumedField>(r.assumed ?? []);
  const mark = (...fields: AssumedField[]) =>
    fields.some((f) => assumed.has(f)) ? ` ${ASSUMED}` : "";
  const lines = [
    `checkpoint: ${r.path}`,
    `format:     ${FORMAT_NAMES[r.format]}`,
    `model:      ${describeConfig(r.config)}`,
    `vision:     image ${v.imageSize}px, patch ${v.patchSize}, ${v.numLayers} layers, width ` +
    `${v.hiddenSize}, mlp ${v.intermediateSize}, ${v.numHeads} heads`,
    `text:       ${t.variant}, ${t.numLayers} layers, width ${t.hiddenSize}, mlp ` +
    `${t.intermediateSize}, heads ${t.numHeads}/${t.numKvHeads} x ${t.headDim}, vocab ` +
    `${t.vocabSize}, query scale ${t.queryPreAttnScalar}^-0.5${mark("queryPreAttnScalar")}, ` +
    `soft-caps ${t.attnLogitSoftcap ?? "off"}/${t.finalLogitSoftcap ?? "off"}` +
    `${mark("attnLogitSoftcap", "finalLogitSoftcap")}, sliding window ` +
    `${t.slidingWindow ?? "off"}${mark("slidingWindow")}, ` +
    `${t.tieWordEmbeddings === false ? "untied" : "tied"} lm_head`,
    `tokens:     image ${r.config.imageTokenIndex} x ${r.config.numImageTokens}, pad ` +
    `${r.config.padTokenId}, bos ${r.config.bosTokenId}, eos ` +
    `${(r.config.eosTokenIds ?? [r.config.eosTokenId]).join(",")}`,
  ];
  if (assumed.size > 0) {
    lines.push(
      `assumed:    ${[...assumed].join(", ")}: published PaliGemma 2 values, not stored in ` +
        `the file; set them with 'pg convert --config config.json'`,
    );
  }
  const note = r.format === "onnx" ? " (implied by the config)" : "";
  lines.push(`parameters${note}:`);
  for (const part of ["vision", "projector", "text", "total"] as const) {
    lines.push(`  ${part.padEnd(10)} ${count(r.parameters[part])}`);
  }
  if (r.format === "onnx") {
    for (const f of r.onnxFiles ?? []) lines.push(`  onnx/${f.name}  ${f.bytes} bytes`);
  } else {
    const d = Object.entries(r.dtypes).map(([k, n]) => `${k} (${n} tensors)`).join(", ");
    lines.push(`dtypes:     ${d}`);
    lines.push(`tensors:    ${r.tensors}`);
  }
  lines.push(
    `bytes:      ${r.bytes.toLocaleString("en-US")} (${(r.bytes / 2 ** 30).toFixed(2)} GiB)`,
  );
  return lines.join("\n");
}

/** `inspect`: print a checkpoint's format, config, parameter counts and dtypes. */
export const inspectCommand: Command = {
  name: "inspect",
  summary: "show a checkpoint's format, config and sizes",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseFlags("inspect", args, { json: { type: "boolean" } });
    if (values.help) {
      writeOut(`${HELP}\n`);
      return 0;
    }
    if (positionals.length !== 1) {
      throw new UsageError("inspect: expected one checkpoint path (see 'inspect --help')");
    }
    const ckpt = await openCheckpoint(positionals[0]);
    try {
      const report = inspectReport(ckpt);
      writeOut(`${values.json ? JSON.stringify(report) : formatReport(report)}\n`);
    } finally {
      ckpt.close();
    }
    return 0;
  },
};
