/**
 * `convert`: flags → `convertToFolder` (lib/convert/to_folder.ts, which holds the checks and the
 * temporary-folder workflow) → progress and result lines on stderr.
 * @module
 */

import type { AssumedField } from "../lib/checkpoint/bigvision.ts";
import { type Checkpoint, openCheckpoint } from "../lib/checkpoint/open.ts";
import { overrideConfig, readConfigJson } from "../lib/convert/config_override.ts";
import { DifferentModelError } from "../lib/convert/same_model.ts";
import { convertToFolder, MissingTokenizerError } from "../lib/convert/to_folder.ts";
import { InputError, UsageError } from "../lib/errors.ts";
import type { TextConfig } from "../lib/model/config.ts";
import { isPrecision, PRECISIONS } from "../lib/model/precision.ts";
import { type MergedTensors, mergeLoraAdapters } from "../lib/lora/apply.ts";
import { convertVqvae } from "../lib/vqvae/convert.ts";
import { type Command, parseFlags, stringFlag, stringsFlag } from "./command.ts";
import { writeOut } from "./stdout.ts";

const HELP = `Usage: pg convert <src> <dst-dir> [options]

Converts an HF folder (safetensors) or a big_vision .npz into an ONNX model folder in the layout
transformers.js loads: onnx/{vision_encoder,embed_tokens,decoder_model_merged}<suffix>.onnx plus
config.json, generation_config.json, preprocessor_config.json and the tokenizer files.
Converting another --dtype into an existing folder adds that precision's files.

Before any conversion work, convert checks that <dst-dir> (or the folder it will be created in)
accepts new files and that its file system has room for the estimated output, and refuses a
<dst-dir> whose config.json describes a different model (exit 3; see --force). Partial folders
(.<dst-dir>.partial-*) that an interrupted convert left beside <dst-dir> are removed. The output
is written to a temporary folder beside <dst-dir> and moved into place only when complete: a
failed convert leaves <dst-dir> as it was.

Options:
  --dtype NAME         fp32 (default), fp16, q8 or q4 (MatMulNBits language model,
                       fp16 vision encoder; see the README)
  --tokenizer FILE     tokenizer.model: write tokenizer.json + tokenizer_config.json from it
                       (needed for a big_vision .npz; an HF folder's own files otherwise)
  --config FILE        HF-style config.json whose values replace the inferred ones (a .npz
                       cannot carry PaliGemma 2's query_pre_attn_scalar or soft-caps: without
                       --config, convert warns and uses the published values); its sizes must
                       match the checkpoint's tensors
  --vae FILE           vae-oid.npz: also write vqvae_decoder.onnx (the segment decoder)
  --vae-only FILE      write only vqvae_decoder.onnx: 'convert --vae-only vae-oid.npz <dir>'
  --final-softcap      apply Gemma 2's final logit soft-cap (big_vision; HF 4.57 does not)
  --force              convert even if <dst-dir> holds a different model; that model's graphs
                       of other precisions are removed and its config.json replaced
  --lora DIR           merge the PEFT LoRA adapter in DIR (adapter_config.json and
                       adapter_model.safetensors) into the weights: W + alpha/r * B*A
                       (alpha/sqrt(r) with use_rslora) on every adapted layer, vision and
                       language alike; modules_to_save weights replace the base ones. Repeat
                       for several adapters: they are applied in the order given
  --lora-scale S       multiply every adapter's alpha/r by S (default 1; one scale for all
                       the --lora adapters)

Examples:
  pg convert paligemma-3b-mix-224 models/pg-224
  pg convert paligemma-3b-mix-224 models/pg-224 --dtype q4
  pg convert pt_224.npz models/pg2-224 --tokenizer paligemma_tokenizer.model --config config.json
  pg convert paligemma2-3b-pt-224 models/my-ft --lora my-adapter --dtype q8`;

/** config.json key and value of each text-config field a big_vision .npz cannot carry. */
const ASSUMED_KEYS: Readonly<Record<AssumedField, [string, (t: TextConfig) => unknown]>> = {
  queryPreAttnScalar: ["query_pre_attn_scalar", (t) => t.queryPreAttnScalar],
  attnLogitSoftcap: ["attn_logit_softcapping", (t) => t.attnLogitSoftcap],
  finalLogitSoftcap: ["final_logit_softcapping", (t) => t.finalLogitSoftcap],
  slidingWindow: ["sliding_window", (t) => t.slidingWindow],
};

/** The one-line warning for a checkpoint whose config has assumed values, or undefined. */
function assumedWarning(ck: Checkpoint): string | undefined {
  if (!ck.assumed || ck.assumed.length === 0) return undefined;
  const fields = ck.assumed.map((f) => {
    const [key, get] = ASSUMED_KEYS[f];
    return `${key} ${get(ck.config.text) ?? "off"}`;
  });
  return `warning: ${ck.path} does not store the query scale or soft-caps; assuming the ` +
    `published PaliGemma 2 values (${fields.join(", ")}); pass --config config.json to set them`;
}

/** --lora-scale's value (1 when absent); a usage error without --lora or when not a number. */
function scaleFlag(value: string | undefined, adapters: number): number {
  if (value === undefined) return 1;
  if (adapters === 0) throw new UsageError("--lora-scale needs --lora");
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`--lora-scale expects a number, got '${value}'`);
  }
  return n;
}

/** The log line of one merged adapter (and its notes). */
function adapterLine(a: MergedTensors["adapters"][number]): string {
  const c = a.config;
  const scaling = c.useRslora ? "alpha/sqrt(r)" : "alpha/r";
  const saved = a.replaced > 0 ? `, ${a.replaced} tensors replaced (modules_to_save)` : "";
  const notes = a.notes.map((n) => `; note: ${n}`).join("");
  return `merging ${a.dir}: LoRA on ${a.loraLayers} layers (r ${c.r}, lora_alpha ${c.alpha}, ` +
    `scaling ${scaling})${saved}${notes}`;
}

/** The library's typed errors in the command line's terms. */
function worded(err: unknown): unknown {
  if (err instanceof DifferentModelError) {
    return new InputError(`${err.message}; pass --force to convert into it anyway`);
  }
  if (err instanceof MissingTokenizerError) {
    return new UsageError(
      `convert: ${err.checkpoint} is a big_vision checkpoint, which carries no tokenizer: ` +
        "pass --tokenizer paligemma_tokenizer.model",
    );
  }
  return err;
}

/** `convert`: checkpoint → ONNX model folder. */
export const convertCommand: Command = {
  name: "convert",
  summary: "convert an HF or big_vision checkpoint to ONNX",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseFlags("convert", args, {
      dtype: { type: "string" },
      tokenizer: { type: "string" },
      config: { type: "string" },
      vae: { type: "string" },
      "vae-only": { type: "string" },
      "final-softcap": { type: "boolean" },
      force: { type: "boolean" },
      lora: { type: "string", multiple: true },
      "lora-scale": { type: "string" },
    });
    if (values.help) {
      writeOut(`${HELP}\n`);
      return 0;
    }
    const vaeOnly = stringFlag(values, "vae-only");
    if (vaeOnly !== undefined) {
      if (positionals.length !== 1) {
        throw new UsageError("convert --vae-only: expected vae-oid.npz <dst-dir>");
      }
      console.error(`convert: wrote ${await convertVqvae(vaeOnly, positionals[0])}`);
      return 0;
    }
    if (positionals.length !== 2) {
      throw new UsageError("convert: expected <src> <dst-dir> (see 'convert --help')");
    }
    const [srcPath, dst] = positionals;
    const precision = stringFlag(values, "dtype") ?? "fp32";
    if (!isPrecision(precision)) {
      throw new UsageError(`--dtype expects ${PRECISIONS.join(", ")}, got '${precision}'`);
    }
    const configPath = stringFlag(values, "config");
    const loras = stringsFlag(values, "lora");
    const loraScale = scaleFlag(stringFlag(values, "lora-scale"), loras.length);
    const log = (line: string) => console.error(`convert: ${line}`);
    const ck = await openCheckpoint(srcPath);
    let merged: MergedTensors | undefined;
    try {
      const config = configPath === undefined
        ? ck.config
        : overrideConfig(ck.config, await readConfigJson(configPath), configPath);
      const warning = configPath === undefined ? assumedWarning(ck) : undefined;
      if (warning !== undefined) log(warning);
      // An ONNX folder has no tensors to merge into; convertToFolder refuses it.
      if (loras.length > 0 && ck.format !== "onnx") {
        merged = await mergeLoraAdapters(ck.tensors, loras, loraScale);
        for (const a of merged.adapters) log(adapterLine(a));
      }
      const src = { ...ck, config, tensors: merged?.tensors ?? ck.tensors };
      const started = performance.now();
      const res = await convertToFolder(src, dst, {
        precision,
        finalSoftcap: values["final-softcap"] === true,
        tokenizerModel: stringFlag(values, "tokenizer"),
        vae: stringFlag(values, "vae"),
        force: values.force === true,
        log,
      });
      const secs = ((performance.now() - started) / 1000).toFixed(1);
      log(`${res.files.length} files written to ${dst} in ${secs} s`);
    } catch (err) {
      throw worded(err);
    } finally {
      merged?.close();
      ck.close();
    }
    return 0;
  },
};
