/**
 * One view of any PaliGemma checkpoint: detects the format (HF safetensors folder, big_vision
 * `.npz`, ONNX model folder) and gives its config and canonical tensors.
 * @module
 */

import * as fs from "node:fs";
import { dirname, join } from "node:path";
import { describeFsError, InputError } from "../errors.ts";
import type { PaliGemmaConfig } from "../model/config.ts";
import {
  type AssumedField,
  bigVisionAssumptions,
  bigVisionTensors,
  inferBigVisionConfig,
} from "./bigvision.ts";
import { hfTensorsWithLayout, readHfConfig } from "./hf.ts";
import { openNpz } from "./npz.ts";
import { openSafetensors } from "./safetensors.ts";
import type { TensorRef, TensorStore } from "./tensor.ts";

/** Checkpoint layouts `openCheckpoint` recognises. */
export type CheckpointFormat = "hf" | "big_vision" | "onnx";

/** A checkpoint seen through the canonical names. */
export interface Checkpoint {
  /** Detected layout. */
  readonly format: CheckpointFormat;
  /** Path as given. */
  readonly path: string;
  /** Model config (from config.json, or inferred from big_vision shapes). */
  readonly config: PaliGemmaConfig;
  /** Canonical name → tensor; empty for ONNX folders (conversion lives elsewhere). */
  readonly tensors: Map<string, TensorRef>;
  /**
   * big_vision only: text-config fields that are published-model defaults, not read from the
   * file (absent when every field is a fact of the checkpoint).
   */
  readonly assumed?: readonly AssumedField[];
  /** HF only: the id of the tensor-name layout recognised (NAME_LAYOUTS in lib/model/names.ts). */
  readonly layout?: string;
  /** ONNX folders only: the `.onnx` files under `onnx/` with their sizes in bytes. */
  readonly onnxFiles?: readonly { name: string; bytes: number }[];
  /** Closes the underlying files. */
  close(): void;
}

const ZIP_MAGIC = [0x50, 0x4b];

function isZip(path: string): boolean {
  const fd = fs.openSync(path, "r");
  try {
    const head = new Uint8Array(2);
    fs.readSync(fd, head, 0, 2, 0);
    return head[0] === ZIP_MAGIC[0] && head[1] === ZIP_MAGIC[1];
  } finally {
    fs.closeSync(fd);
  }
}

function onnxFilesOf(dir: string): { name: string; bytes: number }[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith(".onnx") || n.endsWith(".onnx_data"))
    .sort().map((n) => ({ name: n, bytes: fs.statSync(join(dir, n)).size }));
}

/** Opens a store, closing it again when building the view fails. */
function view(
  format: CheckpointFormat,
  path: string,
  store: TensorStore,
  build: (s: TensorStore) => {
    config: PaliGemmaConfig;
    tensors: Map<string, TensorRef>;
    assumed?: readonly AssumedField[];
    layout?: string;
  },
): Checkpoint {
  try {
    const { config, tensors, assumed, layout } = build(store);
    return {
      format,
      path,
      config,
      tensors,
      ...(assumed && assumed.length > 0 ? { assumed } : {}),
      ...(layout !== undefined ? { layout } : {}),
      close: () => store.close(),
    };
  } catch (err) {
    store.close();
    throw err;
  }
}

/** The canonical tensors of an HF store with the id of the name layout they were found in. */
function hfView(store: TensorStore, config: PaliGemmaConfig) {
  const { tensors, layout } = hfTensorsWithLayout(store, config);
  return { config, tensors, layout: layout.id };
}

const UNKNOWN = "unknown checkpoint format: expected an HF folder (config.json + *.safetensors), " +
  "a big_vision .npz or an ONNX model folder (onnx/)";

/**
 * Opens a checkpoint: an HF folder (config.json with model.safetensors or sharded safetensors;
 * also a .safetensors / index.json file inside one), a big_vision `.npz`, or an ONNX model
 * folder (detected and described only). Every tensor the config demands is checked for presence
 * and shape; failures are InputErrors naming the file and tensor.
 */
export async function openCheckpoint(path: string): Promise<Checkpoint> {
  let stat: Deno.FileInfo;
  try {
    stat = Deno.statSync(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  if (stat.isDirectory) {
    const has = (name: string) => fs.existsSync(join(path, name));
    if (has("onnx") && Deno.statSync(join(path, "onnx")).isDirectory) {
      if (!has("config.json")) throw new InputError(`${path}: ONNX folder without config.json`);
      const config = await readHfConfig(path);
      return {
        format: "onnx",
        path,
        config,
        tensors: new Map(),
        onnxFiles: onnxFilesOf(join(path, "onnx")),
        close: () => {},
      };
    }
    if (has("config.json")) {
      if (!has("model.safetensors") && !has("model.safetensors.index.json")) {
        throw new InputError(
          `${path}: config.json but neither model.safetensors nor model.safetensors.index.json`,
        );
      }
      const config = await readHfConfig(path);
      const store = await openSafetensors(path);
      return view("hf", path, store, (s) => hfView(s, config));
    }
    throw new InputError(`${path}: ${UNKNOWN}`);
  }
  if (path.endsWith(".safetensors") || path.endsWith(".safetensors.index.json")) {
    const config = await readHfConfig(dirname(path));
    const store = await openSafetensors(path);
    return view("hf", path, store, (s) => hfView(s, config));
  }
  let zip: boolean;
  try {
    zip = stat.size >= 2 && isZip(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  if (zip || path.endsWith(".npz")) {
    const store = await openNpz(path);
    return view("big_vision", path, store, (s) => {
      const config = inferBigVisionConfig(s);
      return {
        config,
        tensors: bigVisionTensors(s, config),
        assumed: bigVisionAssumptions(config),
      };
    });
  }
  throw new InputError(`${path}: ${UNKNOWN}`);
}
