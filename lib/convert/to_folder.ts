/**
 * Converting a checkpoint into a model folder safely: checks before any work (not already ONNX, a
 * tokenizer available, the folder holds no different model, the folders are writable, the space
 * suffices), removal of partial folders an interrupted run left, then conversion into a temporary
 * folder beside the destination that is moved into place only when complete. A failure removes the
 * temporary folder and leaves the destination as it was.
 * @module
 */

import { writeTokenizerCacheBeside } from "../tokenizer/load.ts";
import * as fs from "node:fs";
import { basename, dirname, join, relative, sep } from "node:path";
import type { CheckpointFormat } from "../checkpoint/open.ts";
import { describeFsError, FsError, InputError, UsageError } from "../errors.ts";
import { isPrecision } from "../model/precision.ts";
import { sentencePieceFileToHf } from "../tokenizer/to_json.ts";
import { writeVqvaeInto } from "../vqvae/convert.ts";
import { loadVqvaeWeights } from "../vqvae/weights.ts";
import {
  convertModel,
  type ConvertOptions,
  type ConvertResult,
  estimateOutputBytes,
} from "./convert.ts";
import { commitDir, removeStalePartials, tempDirBeside } from "./output.ts";
import { checkFreeSpace, checkWritable } from "./preflight.ts";
import { checkSameModel, DifferentModelError } from "./same_model.ts";
import type { ConvertSource } from "./source.ts";
import { type CopyFile, copyTokenizer, writeTokenizerFrom } from "./tokenizer_files.ts";

/** What `convertToFolder` reads: an opened checkpoint (`openCheckpoint`), config possibly replaced. */
export interface FolderSource extends ConvertSource {
  /** Detected layout: HF folders bring their tokenizer files, big_vision ones none. */
  readonly format: CheckpointFormat;
}

/** Options of `convertToFolder`: those of `convertModel` and the folder's other contents. */
export interface ToFolderOptions extends ConvertOptions {
  /** A SentencePiece tokenizer.model to write tokenizer.json and tokenizer_config.json from. */
  readonly tokenizerModel?: string;
  /** big_vision's vae-oid.npz: also write vqvae_decoder.onnx. */
  readonly vae?: string;
  /**
   * Convert even when the destination holds a different model: that model's graphs of other
   * precisions are removed and its config.json replaced.
   */
  readonly force?: boolean;
  /** Copies a file into the folder (default Deno.copyFile); tests inject failures here. */
  readonly copyFile?: CopyFile;
  /**
   * Called with the complete temporary folder just before it is moved into place, to add files
   * that must appear together with the model (the model cache's pg-cache.json).
   */
  readonly beforeCommit?: (tmp: string) => Promise<void>;
}

/** What `convertToFolder` did. */
export interface ToFolderResult extends ConvertResult {
  /** Partial folders of interrupted runs that were removed. */
  readonly removedPartials: readonly string[];
  /** Graph files of a replaced different model that were removed (`force`), relative. */
  readonly removedGraphs: readonly string[];
  /** The output estimate the free space was checked against, in bytes. */
  readonly estimatedBytes: number;
}

/** A big_vision checkpoint carries no tokenizer and none was given (exit 2). */
export class MissingTokenizerError extends UsageError {
  /** `checkpoint` is the big_vision file. */
  constructor(readonly checkpoint: string) {
    super(
      `${checkpoint} is a big_vision checkpoint, which carries no tokenizer: ` +
        "a tokenizer.model is needed",
    );
    this.name = "MissingTokenizerError";
  }
}

/** Whether `dst` is an existing folder (false: absent); refuses a file there. */
function isExistingFolder(dst: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(dst);
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return false;
    throw describeFsError(err, dst);
  }
  if (st.isDirectory()) return true;
  throw new InputError(`${dst}: exists and is not a folder`);
}

/** `err` with a path inside `tmp` re-placed at the same path inside `dst` (the name users know). */
function underDestination(err: unknown, tmp: string, dst: string): unknown {
  if (err instanceof FsError && (err.path === tmp || err.path.startsWith(tmp + sep))) {
    return err.at(join(dst, relative(tmp, err.path)));
  }
  return describeFsError(err, dst, "converting");
}

/**
 * Converts `src` into the model folder `dst` (created, or given another precision of the same
 * model); see the module doc for the checks and the guarantees on failure.
 */
export async function convertToFolder(
  src: FolderSource,
  dst: string,
  opts: ToFolderOptions,
): Promise<ToFolderResult> {
  const log = opts.log ?? (() => {});
  if (!isPrecision(opts.precision)) {
    throw new RangeError(`unknown precision '${String(opts.precision)}'`);
  }
  if (src.format === "onnx") throw new InputError(`${src.path}: is already an ONNX model folder`);
  const dstIsFolder = isExistingFolder(dst);
  const hasTokenizer = dstIsFolder && fs.existsSync(join(dst, "tokenizer.json"));
  if (src.format === "big_vision" && opts.tokenizerModel === undefined && !hasTokenizer) {
    throw new MissingTokenizerError(src.path);
  }
  // Read the tokenizer and the VAE before the long conversion, so bad files fail fast.
  const tokFiles = opts.tokenizerModel === undefined
    ? undefined
    : await sentencePieceFileToHf(opts.tokenizerModel);
  const vae = opts.vae === undefined ? undefined : await loadVqvaeWeights(opts.vae);
  let replace = false;
  if (dstIsFolder) {
    try {
      checkSameModel(dst, src.config);
    } catch (err) {
      if (!(err instanceof DifferentModelError) || !opts.force) throw err;
      replace = true;
      const d = err.difference;
      log(
        `replacing the different model in ${dst} (` +
          (d ? `${d.field} ${d.existing} there, ${d.incoming} now)` : "unreadable config.json)"),
      );
    }
  }
  checkWritable(dst);
  const removedPartials = await removeStalePartials(dst);
  if (removedPartials.length > 0) {
    log(
      `removed ${removedPartials.length} partial folder(s) an interrupted convert left beside ` +
        `${dst}: ${removedPartials.map((p) => basename(p)).join(", ")}`,
    );
  }
  // The graphs are most of the folder; the VAE and tokenizer files are left out of the estimate.
  const estimatedBytes = estimateOutputBytes(src, opts.precision, opts.quant);
  checkFreeSpace(dst, estimatedBytes);
  const partial = await tempDirBeside(dst);
  const tmp = partial.path;
  try {
    const res = await convertModel(src, tmp, opts);
    const copy = opts.copyFile ?? Deno.copyFile;
    if (tokFiles !== undefined && opts.tokenizerModel !== undefined) {
      await writeTokenizerFrom(tokFiles, opts.tokenizerModel, tmp, copy);
      log(`tokenizer.json and tokenizer_config.json written from ${opts.tokenizerModel}`);
    } else if (src.format === "hf") {
      const dir = fs.statSync(src.path).isDirectory() ? src.path : dirname(src.path);
      const { copied, filled } = await copyTokenizer(dir, tmp, copy);
      if (copied === 0) log(`warning: no tokenizer files in ${dir}`);
      else if (filled) log("tokenizer.json written from tokenizer.model");
    }
    if (fs.existsSync(join(tmp, "tokenizer.json"))) {
      // A pre-built tokenizer beside the JSON: loads in a tenth of the time (lib/tokenizer/cache.ts).
      if (await writeTokenizerCacheBeside(join(tmp, "tokenizer.json")).catch(() => false)) {
        log("tokenizer.pgcache written (the tokenizer pre-built for fast loading)");
      }
    }
    if (vae) await writeVqvaeInto(vae, tmp);
    await opts.beforeCommit?.(tmp);
    const removedGraphs = await commitDir(tmp, dst, { replace });
    if (removedGraphs.length > 0) {
      log(`removed the replaced model's ${removedGraphs.join(", ")}`);
    }
    return { ...res, removedPartials, removedGraphs, estimatedBytes };
  } catch (err) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw underDestination(err, tmp, dst);
  } finally {
    partial.release();
  }
}
