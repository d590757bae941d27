/**
 * How the CLI words errors: one line per error, in the command line's own terms (flag names), from
 * the typed errors the library throws. Used for fatal errors and for per-image error records.
 * @module
 */

import {
  MissingGraphs,
  MissingPrecision,
  NotAModelFolder,
  NotConverted,
  OutdatedGraph,
} from "../lib/backend/model_errors.ts";
import { NotACacheEntry } from "../lib/convert/cache_entries.ts";
import { MissingTokenizerError } from "../lib/convert/to_folder.ts";
import { NoTokenizerBeside } from "../lib/backend/model_source.ts";
import { NoGpuAdapter } from "../lib/backend/webgpu.ts";
import { CONVENTIONS, UnknownConvention } from "../lib/detect/convention.ts";
import { ExitCode, PgError } from "../lib/errors.ts";
import { ImageTooLarge } from "../lib/image/load.ts";
import { EmptyPromptPart } from "../lib/prompt/tasks.ts";
import { NoDecoderFile, NoMaskDecoder } from "../lib/vqvae/session.ts";

/** The CLI's wording of a library error, or undefined when its own message says it all. */
function cliWords(err: PgError): string | undefined {
  if (err instanceof ImageTooLarge) {
    return `${err.path}: image is ${err.width}x${err.height} = ${err.width * err.height} ` +
      `pixels, more than the limit of ${err.limit}; raise it with --max-pixels`;
  }
  if (err instanceof NotConverted) {
    return `${err.path}: is ${err.what}, not a converted model folder; run ` +
      `'pg convert ${err.path} <dir>' first and pass --model <dir>`;
  }
  if (err instanceof NotAModelFolder) {
    return err.reason === "file"
      ? `${err.path}: is a file; --model expects a converted model folder`
      : `${err.path}: no onnx/ folder; --model expects a folder written by 'pg convert'`;
  }
  if (err instanceof MissingGraphs) {
    return `${err.path}: onnx/ lacks a complete set of vision_encoder, embed_tokens and ` +
      `decoder_model_merged graphs of any precision; re-run 'pg convert'`;
  }
  if (err instanceof MissingPrecision) {
    return `${err.path}: has no ${err.wanted} graphs (present: ${err.present.join(", ")}); ` +
      `convert with --dtype ${err.wanted} or pick another --dtype`;
  }
  if (err instanceof OutdatedGraph) {
    return `${err.graph}: missing input(s) ${err.missing.join(", ")}; re-run 'pg convert'`;
  }
  if (err instanceof NoGpuAdapter) {
    return `${err.message.replace("the ONNX backend", "--backend onnx")}`;
  }
  if (err instanceof NoTokenizerBeside) {
    return `${err.checkpoint}: no tokenizer.json or tokenizer.model beside the checkpoint; pass ` +
      "--tokenizer FILE";
  }
  if (err instanceof MissingTokenizerError) {
    return `${err.checkpoint} is a big_vision checkpoint, which carries no tokenizer: pass ` +
      "--tokenizer tokenizer.model";
  }
  if (err instanceof NotACacheEntry) {
    return `${err.entry}: not an entry of the model cache ${err.root} (see 'pg cache ls')`;
  }
  if (err instanceof NoDecoderFile) return `--vae ${err.path}: no such file`;
  if (err instanceof NoMaskDecoder) {
    return `${err.modelDir}: no vqvae_decoder.onnx in the model folder; run ` +
      `'pg convert --vae-only vae-oid.npz ${err.modelDir}' or pass --vae vae-oid.npz`;
  }
  if (err instanceof UnknownConvention) {
    return `--convention expects ${CONVENTIONS.join(" or ")}, got '${err.value}'`;
  }
  if (err instanceof EmptyPromptPart && err.part.endsWith(" language")) {
    return `--lang must not be empty`;
  }
  return undefined;
}

/** The one-line message and exit code the CLI gives `err`. */
export function errorLine(err: unknown): { message: string; exitCode: number; expected: boolean } {
  if (err instanceof PgError) {
    return { message: cliWords(err) ?? err.message, exitCode: err.exitCode, expected: true };
  }
  if (err instanceof Deno.errors.NotCapable) {
    // Deno's sandbox refuses devices and /proc paths (e.g. /dev/stdin) to anything but --allow-all.
    const path = /"([^"]+)"/.exec(err.message)?.[1] ?? "the file";
    return {
      message: `${path}: pg reads regular files only, not devices or pipes; save the data to a ` +
        "file first (image paths, not image data, can come on stdin with '-')",
      exitCode: ExitCode.badInput,
      expected: true,
    };
  }
  const msg = err instanceof Error ? err.message : String(err);
  return { message: msg.split("\n")[0], exitCode: ExitCode.badInput, expected: false };
}
