/**
 * The library's typed errors name no CLI flag or command; cli/wording.ts words each of them in the
 * command line's terms (flags, `pg convert`), keeping the exit code.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { errorLine } from "../cli/wording.ts";
import {
  MissingGraphs,
  MissingPrecision,
  NotAModelFolder,
  NotConverted,
  OutdatedGraph,
} from "../lib/backend/model_errors.ts";
import { NotACacheEntry } from "../lib/convert/cache_entries.ts";
import { MissingTokenizerError } from "../lib/convert/to_folder.ts";
import { UnknownConvention } from "../lib/detect/convention.ts";
import { InputError, type PgError } from "../lib/errors.ts";
import { ImageTooLarge } from "../lib/image/load.ts";
import { EmptyPromptPart } from "../lib/prompt/tasks.ts";
import { NoDecoderFile, NoMaskDecoder } from "../lib/vqvae/session.ts";

/** Each library error, its message's pattern and the CLI's line for it. */
const CASES: [PgError, RegExp, string][] = [
  [
    new ImageTooLarge("a.png", 200, 100, 10_000),
    /^a\.png: image is 200x100 = 20000 pixels, more than the limit of 10000$/,
    "a.png: image is 200x100 = 20000 pixels, more than the limit of 10000; raise it with " +
    "--max-pixels",
  ],
  [
    new NotConverted("m.npz", "a big_vision checkpoint"),
    /^m\.npz: is a big_vision checkpoint, not a converted model folder; convert it first$/,
    "m.npz: is a big_vision checkpoint, not a converted model folder; run " +
    "'pg convert m.npz <dir>' first and pass --model <dir>",
  ],
  [
    new NotAModelFolder("x.bin", "file"),
    /^x\.bin: is a file, not a converted model folder$/,
    "x.bin: is a file; --model expects a converted model folder",
  ],
  [
    new NotAModelFolder("d", "no onnx folder"),
    /^d: no onnx\/ folder, so not a converted model folder$/,
    "d: no onnx/ folder; --model expects a folder written by 'pg convert'",
  ],
  [
    new MissingGraphs("d"),
    /^d: onnx\/ lacks .* of any precision; convert the checkpoint again$/,
    "d: onnx/ lacks a complete set of vision_encoder, embed_tokens and decoder_model_merged " +
    "graphs of any precision; re-run 'pg convert'",
  ],
  [
    new MissingPrecision("d", "q4", ["fp32", "q8"]),
    /^d: has no q4 graphs \(present: fp32, q8\)$/,
    "d: has no q4 graphs (present: fp32, q8); convert with --dtype q4 or pick another --dtype",
  ],
  [
    new OutdatedGraph("decoder_model_merged", ["num_logits_to_keep"]),
    /^decoder_model_merged: missing input\(s\) num_logits_to_keep; convert the checkpoint again$/,
    "decoder_model_merged: missing input(s) num_logits_to_keep; re-run 'pg convert'",
  ],
  [
    new NoDecoderFile("v.npz"),
    /^v\.npz: no such VQ-VAE decoder file$/,
    "--vae v.npz: no such file",
  ],
  [
    new NoMaskDecoder("d"),
    /^d: no vqvae_decoder\.onnx in the model folder; convert vae-oid\.npz into it or give a decoder file$/,
    "d: no vqvae_decoder.onnx in the model folder; run 'pg convert --vae-only vae-oid.npz d' or " +
    "pass --vae vae-oid.npz",
  ],
  [
    new MissingTokenizerError("m.npz"),
    /^m\.npz is a big_vision checkpoint, which carries no tokenizer: a tokenizer\.model is needed$/,
    "m.npz is a big_vision checkpoint, which carries no tokenizer: pass --tokenizer tokenizer.model",
  ],
  [
    new NotACacheEntry("x", "/c"),
    /^x: not an entry of the model cache \/c$/,
    "x: not an entry of the model cache /c (see 'pg cache ls')",
  ],
  [
    new UnknownConvention("coco"),
    /^unknown box convention 'coco' \(expected big_vision or hf-demo\)$/,
    "--convention expects big_vision or hf-demo, got 'coco'",
  ],
  [
    new EmptyPromptPart("caption language"),
    /^caption language must not be empty$/,
    "--lang must not be empty",
  ],
  [new EmptyPromptPart("question"), /^question must not be empty$/, "question must not be empty"],
];

Deno.test("lib errors name no flag or command; the CLI words each with its flags", () => {
  for (const [err, libText, cliText] of CASES) {
    assert.match(err.message, libText);
    assert.doesNotMatch(err.message, /--|\bpg /, err.message);
    const line = errorLine(err);
    assert.equal(line.message, cliText);
    assert.equal(line.exitCode, err.exitCode);
    assert.ok(line.expected);
  }
  assert.equal(errorLine(new UnknownConvention("x")).exitCode, 2);
  assert.equal(errorLine(new EmptyPromptPart("object names")).exitCode, 2);
  assert.equal(errorLine(new MissingPrecision("d", "q4", [])).exitCode, 3);
  // Other errors keep their message; unexpected ones give their first line and exit 3.
  assert.deepEqual(errorLine(new InputError("f: bad")), {
    message: "f: bad",
    exitCode: 3,
    expected: true,
  });
  assert.deepEqual(errorLine(new Error("boom\nstack")), {
    message: "boom",
    exitCode: 3,
    expected: false,
  });
});

/** `(file, line)` of every string literal under `dir` that names a flag or a `pg` command. */
function flagStrings(dir: string): string[] {
  const hits: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) {
      hits.push(...flagStrings(p));
      continue;
    }
    if (!e.name.endsWith(".ts")) continue;
    const text = Deno.readTextFileSync(p).replace(
      /\/\*[\s\S]*?\*\//g,
      (c) => c.replace(/[^\n]/g, " "),
    );
    text.split("\n").forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, "");
      if (/[`'"][^`'"]*(--[a-z]|\bpg [a-z])/.test(code)) hits.push(`${p}:${i + 1}: ${line.trim()}`);
    });
  }
  return hits;
}

Deno.test("no string in lib/ names a CLI flag or a pg command", () => {
  const lib = new URL("../lib/", import.meta.url).pathname;
  assert.deepEqual(flagStrings(lib), []);
});
