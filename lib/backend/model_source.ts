/**
 * A checkpoint read as it is, without converting it: an HF folder (or a safetensors file in one)
 * or a big_vision `.npz`, with the model facts every command needs (`ModelInfo`) and its tensors
 * under the canonical names (lib/checkpoint/open.ts). The WebGPU backend loads from this.
 * @module
 */

import * as fs from "node:fs";
import { dirname, join } from "node:path";
import type { AssumedField } from "../checkpoint/bigvision.ts";
import { openCheckpoint } from "../checkpoint/open.ts";
import { overrideConfig, readConfigJson } from "../convert/config_override.ts";
import type { ConvertSource } from "../convert/source.ts";
import { InputError } from "../errors.ts";
import { DEFAULT_PREPROCESS, parsePreprocessConfig } from "../image/preprocess_config.ts";
import { readProcessorSettings } from "../image/processor_file.ts";
import { eosIdsIn, type ModelInfo } from "./model_dir.ts";

/** An HF checkpoint without tokenizer.json or tokenizer.model beside it, and none given. */
export class NoTokenizerBeside extends InputError {
  /** `checkpoint` is the folder or file given. */
  constructor(readonly checkpoint: string) {
    super(`${checkpoint}: no tokenizer.json or tokenizer.model beside the checkpoint`);
    this.name = "NoTokenizerBeside";
  }
}

/** Options of `openCheckpointModel`. */
export interface CheckpointModelOptions {
  /** tokenizer.model (or tokenizer.json) to use; needed for a `.npz`. */
  readonly tokenizer?: string;
  /** config.json whose values replace the checkpoint's. */
  readonly configFile?: string;
  /** Told the text-config fields a `.npz` does not store (published values are assumed). */
  readonly onAssumed?: (fields: readonly AssumedField[]) => void;
}

/** An opened checkpoint: its model facts and its canonical tensors. */
export interface CheckpointModel {
  /** Config, pre-processing, stop ids and tokenizer path. */
  readonly info: ModelInfo;
  /** Canonical tensors with the (possibly overridden) config. */
  readonly source: ConvertSource;
  /** Closes the checkpoint's files. */
  close(): void;
}

function isFile(path: string): boolean {
  try {
    return fs.statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Opens an HF folder or a big_vision `.npz` for reading its tensors directly. */
export async function openCheckpointModel(
  path: string,
  opts: CheckpointModelOptions = {},
): Promise<CheckpointModel> {
  const ck = await openCheckpoint(path);
  try {
    if (ck.format === "onnx") {
      throw new InputError(`${path}: a converted ONNX folder, not a checkpoint`);
    }
    const config = opts.configFile === undefined
      ? ck.config
      : overrideConfig(ck.config, await readConfigJson(opts.configFile), opts.configFile);
    if (opts.configFile === undefined && ck.assumed) opts.onAssumed?.(ck.assumed);
    const folder = ck.format === "hf"
      ? (fs.statSync(path).isDirectory() ? path : dirname(path))
      : null;
    const tokenizer = opts.tokenizer ??
      (folder === null
        ? undefined
        : ["tokenizer.json", "tokenizer.model"].map((f) => join(folder, f)).find(isFile));
    if (tokenizer === undefined) throw new NoTokenizerBeside(path);
    const settings = folder === null ? undefined : readProcessorSettings(folder);
    const preprocess = settings === undefined ? DEFAULT_PREPROCESS : parsePreprocessConfig(
      settings.json,
      settings.path,
      { imageSize: config.vision.imageSize, imageTokens: config.numImageTokens },
    );
    const eos = new Set<number>([
      ...(config.eosTokenIds ?? [config.eosTokenId]),
      ...(folder === null ? [] : eosIdsIn(join(folder, "generation_config.json"))),
    ]);
    return {
      info: { path, config, preprocess, eosIds: [...eos], tokenizer },
      source: { path: ck.path, config, tensors: ck.tensors },
      close: () => ck.close(),
    };
  } catch (err) {
    ck.close();
    throw err;
  }
}
