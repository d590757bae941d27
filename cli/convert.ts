import { dirname, join } from "node:path";
import * as fs from "node:fs";
import { openCheckpoint } from "../lib/checkpoint/open.ts";
import { convertModel } from "../lib/convert/convert.ts";
import { isPrecision, PRECISIONS } from "../lib/model/precision.ts";
import { commitDir, tempDirBeside } from "../lib/convert/output.ts";
import { overrideConfig, readConfigJson } from "../lib/convert/config_override.ts";
import { InputError, UsageError } from "../lib/errors.ts";
import { convertVqvae, writeVqvaeInto } from "../lib/vqvae/convert.ts";
import { loadVqvaeWeights } from "../lib/vqvae/weights.ts";
import {
  fillTokenizerJson,
  sentencePieceFileToHf,
  writeHfTokenizer,
} from "../lib/tokenizer/to_json.ts";
import { type Command, parseFlags, stringFlag } from "./command.ts";

const HELP = `Usage: pg convert <src> <dst-dir> [options]

Converts an HF folder (safetensors) or a big_vision .npz into an ONNX model folder in the layout
transformers.js loads: onnx/{vision_encoder,embed_tokens,decoder_model_merged}<suffix>.onnx plus
config.json, generation_config.json, preprocessor_config.json and the tokenizer files.
Converting another --dtype into an existing folder adds that precision's files.

Options:
  --dtype NAME         fp32 (default), fp16, q8 or q4 (MatMulNBits language model,
                       fp16 vision encoder; see the README)
  --tokenizer FILE     tokenizer.model: write tokenizer.json + tokenizer_config.json from it
                       (needed for a big_vision .npz; an HF folder's own files otherwise)
  --config FILE        HF-style config.json whose values replace the inferred ones (a .npz
                       cannot carry PaliGemma 2's query_pre_attn_scalar or soft-caps); its
                       sizes must match the checkpoint's tensors
  --vae FILE           vae-oid.npz: also write vqvae_decoder.onnx (the segment decoder)
  --vae-only FILE      write only vqvae_decoder.onnx: 'convert --vae-only vae-oid.npz <dir>'
  --final-softcap      apply Gemma 2's final logit soft-cap (big_vision; HF 4.57 does not)`;

const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
];

/** Copies the HF tokenizer files found in `srcDir` into `out`; returns how many were copied. */
function copyTokenizer(srcDir: string, out: string): number {
  let n = 0;
  for (const f of TOKENIZER_FILES) {
    const p = join(srcDir, f);
    if (fs.existsSync(p)) {
      fs.copyFileSync(p, join(out, f));
      n++;
    }
  }
  return n;
}

/** Whether `dst` is an existing folder (false: absent); refuses a file there before any work. */
function destinationKind(dst: string): boolean {
  try {
    if (fs.statSync(dst).isDirectory()) return true;
  } catch {
    return false;
  }
  throw new InputError(`${dst}: exists and is not a folder`);
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
    });
    if (values.help) {
      console.log(HELP);
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
    const dtype = stringFlag(values, "dtype") ?? "fp32";
    if (!isPrecision(dtype)) {
      throw new UsageError(`--dtype expects ${PRECISIONS.join(", ")}, got '${dtype}'`);
    }
    const vaePath = stringFlag(values, "vae");
    const vae = vaePath === undefined ? undefined : await loadVqvaeWeights(vaePath);
    const tokenizer = stringFlag(values, "tokenizer");
    const configPath = stringFlag(values, "config");
    const dstIsFolder = destinationKind(dst);
    const ck = await openCheckpoint(srcPath);
    try {
      if (ck.format === "onnx") {
        throw new InputError(`${srcPath}: is already an ONNX model folder`);
      }
      const hasTokenizer = dstIsFolder && fs.existsSync(join(dst, "tokenizer.json"));
      if (ck.format === "big_vision" && tokenizer === undefined && !hasTokenizer) {
        throw new UsageError(
          `convert: ${srcPath} is a big_vision checkpoint, which carries no tokenizer: ` +
            "pass --tokenizer paligemma_tokenizer.model",
        );
      }
      // Read --tokenizer before the long conversion, so a bad file fails fast.
      const tokFiles = tokenizer === undefined ? undefined : await sentencePieceFileToHf(tokenizer);
      const src = configPath === undefined ? ck : {
        ...ck,
        config: overrideConfig(ck.config, await readConfigJson(configPath), configPath),
      };
      const tmp = await tempDirBeside(dst);
      try {
        const started = performance.now();
        const log = (line: string) => console.error(`convert: ${line}`);
        const res = await convertModel(src, tmp, {
          precision: dtype,
          finalSoftcap: values["final-softcap"] === true,
          log,
        });
        if (tokFiles !== undefined && tokenizer !== undefined) {
          await writeHfTokenizer(tokFiles, tmp);
          fs.copyFileSync(tokenizer, join(tmp, "tokenizer.model"));
          log(`tokenizer.json and tokenizer_config.json written from ${tokenizer}`);
        } else if (ck.format === "hf") {
          const dir = fs.statSync(ck.path).isDirectory() ? ck.path : dirname(ck.path);
          if (copyTokenizer(dir, tmp) === 0) log(`warning: no tokenizer files in ${dir}`);
          else if (await fillTokenizerJson(tmp)) log("tokenizer.json written from tokenizer.model");
        }
        if (vae) await writeVqvaeInto(vae, tmp);
        await commitDir(tmp, dst);
        log(
          `${res.files.length} files written to ${dst} in ${
            ((performance.now() - started) / 1000).toFixed(1)
          } s`,
        );
      } catch (err) {
        await Deno.remove(tmp, { recursive: true }).catch(() => {});
        throw err;
      }
    } finally {
      ck.close();
    }
    return 0;
  },
};
