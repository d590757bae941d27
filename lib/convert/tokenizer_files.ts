/**
 * The tokenizer files of a converted model folder: written from a SentencePiece tokenizer.model,
 * or copied from the HF checkpoint folder (with tokenizer.json filled in when only
 * tokenizer.model is there).
 * @module
 */

import * as fs from "node:fs";
import { join } from "node:path";
import { describeFsError } from "../errors.ts";
import {
  fillTokenizerJson,
  type HfTokenizerFiles,
  writeHfTokenizer,
} from "../tokenizer/to_json.ts";

/** Copies one file; the converter's default is Deno.copyFile (tests inject failures). */
export type CopyFile = (from: string, to: string) => Promise<void>;

/** HF tokenizer files copied from a checkpoint folder when present. */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
] as const;

/** Copies `from` to `to`; a failure is an FsError naming `to`. */
async function copyInto(copy: CopyFile, from: string, to: string): Promise<void> {
  try {
    await copy(from, to);
  } catch (err) {
    throw describeFsError(err, to, `copying ${from}`);
  }
}

/**
 * Writes tokenizer.json + tokenizer_config.json from the converted `files` into `out` and copies
 * their source `modelPath` (tokenizer.model) beside them.
 */
export async function writeTokenizerFrom(
  files: HfTokenizerFiles,
  modelPath: string,
  out: string,
  copy: CopyFile = Deno.copyFile,
): Promise<void> {
  await writeHfTokenizer(files, out);
  await copyInto(copy, modelPath, join(out, "tokenizer.model"));
}

/**
 * Copies the HF tokenizer files found in `srcDir` into `out` and writes tokenizer.json when only
 * tokenizer.model was there. Returns how many files were copied and whether tokenizer.json was
 * written.
 */
export async function copyTokenizer(
  srcDir: string,
  out: string,
  copy: CopyFile = Deno.copyFile,
): Promise<{ copied: number; filled: boolean }> {
  let copied = 0;
  for (const f of TOKENIZER_FILES) {
    const p = join(srcDir, f);
    if (fs.existsSync(p)) {
      await copyInto(copy, p, join(out, f));
      copied++;
    }
  }
  return { copied, filled: copied > 0 && await fillTokenizerJson(out) };
}
